//! A stack's `connect.toml` for disaster recovery: shared by the end-to-end recovery test and the `recover`
//! bench, which both recover one stack's backups onto another.

use std::path::Path;

use connect_db::pitr::PitrConfig;

use super::Stack;

impl Stack {
    /// This stack's `connect.toml` with continuous backups (`repo`: the pgBackRest repository to use, the
    /// lost server's when recovering), backup sets of this stack's uploads and `configs` (copied to
    /// `offhost`), and how its Redis starts (`[redis] start_command`, which a recovery restarts it with).
    pub fn recovery_toml(&self, pitr: &PitrConfig, repo: &str, offhost: &Path, configs: &[&Path]) -> String {
        let a = self.address();
        let start = self.redis.start_command().argv;
        let base =
            a.connect_toml()
                .replacen("[redis]\n", &format!("[redis]\nstart_command = {start:?}\n"), 1);
        let mut s = format!(
            "{base}\n[database.pitr]\nrepo = {repo:?}\nstate_dir = {state:?}\narchive_timeout = \"5s\"\nrun_as = {run_as:?}\n\
             etcd = \"http://127.0.0.1:{etcd}\"\n",
            state = pitr.state_dir,
            run_as = pitr.run_as,
            etcd = self.cluster.etcd_port,
        );
        for n in &pitr.nodes {
            s.push_str(&format!(
                "[[database.pitr.nodes]]\nmember = {:?}\ndata_dir = {:?}\nport = {}\nsocket_dir = {:?}\n",
                n.member, n.data_dir, n.port, n.socket_dir
            ));
        }
        let configs: Vec<String> = configs.iter().map(|c| c.display().to_string()).collect();
        s.push_str(&format!(
            "[backup_all]\ndir = {sets:?}\nuploads_dir = {uploads:?}\nconfigs = {configs:?}\ncopy_to = {off:?}\n",
            sets = a.dir.join("sets").display().to_string(),
            uploads = a.dir.join("uploads").display().to_string(),
            off = offhost.display().to_string(),
        ));
        s
    }
}
