//! A tmux server of a test's own: commands run in real terminals (panes), their screens captured as text and
//! keys sent to them, as an operator would see and type.

use std::process::Command;
use std::time::Duration;

/// A tmux server with its own socket name, killed on drop.
#[derive(Debug)]
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts one whose windows are `width` × `height`; `None` when tmux is missing and real tests are not
    /// required (see `require_program`).
    pub fn start(name: &str, width: u16, height: u16) -> Option<Tmux> {
        connect_core::testing::require_program(name, "tmux", &[])?;
        let tmux = Tmux {
            socket: format!("connect-{name}-{}", std::process::id()),
        };
        // `cat` keeps the session's first window open.
        let (w, h) = (width.to_string(), height.to_string());
        tmux.call(&["-f", "/dev/null", "new-session", "-d", "-x", &w, "-y", &h, "cat"]);
        Some(tmux)
    }

    /// Runs a tmux command on this server; its output. Panics when tmux fails (a test harness).
    pub fn call(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `command` in a new window (a fresh pseudo-terminal); the pane id. `EXIT=<code>` is printed when
    /// it ends, and the pane stays open (`cat` reads the terminal) to be captured.
    pub fn run(&self, command: &str, env: &[(&str, &str)]) -> String {
        let mut args = vec![
            "new-window".to_string(),
            "-d".into(),
            "-P".into(),
            "-F".into(),
            "#{pane_id}".into(),
        ];
        for (k, v) in env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push(format!("{command}; echo EXIT=$?; exec cat"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.call(&args).trim().to_string()
    }

    /// The pane's screen as text (what a person sees: no escape sequences).
    pub fn capture(&self, pane: &str) -> String {
        self.call(&["capture-pane", "-p", "-J", "-t", pane])
    }

    /// A tmux format evaluated for the pane (`#{alternate_on}`, `#{cursor_flag}`…).
    pub fn format(&self, pane: &str, format: &str) -> String {
        self.call(&["display-message", "-p", "-t", pane, format])
            .trim()
            .to_string()
    }

    /// Waits until the pane's screen satisfies `done`, polling every 20 ms up to `deadline`; the screen then.
    /// Panics with the last screen when it never does.
    pub async fn wait_for(
        &self,
        pane: &str,
        what: &str,
        deadline: Duration,
        done: impl Fn(&str) -> bool,
    ) -> String {
        connect_core::wait::poll_until("tmux", what, deadline, Duration::from_millis(20), || {
            let screen = self.capture(pane);
            let ok = done(&screen);
            async move { Ok(if ok { Ok(screen) } else { Err(screen) }) }
        })
        .await
        .unwrap_or_else(|e| panic!("the pane never showed {what}: {e}"))
    }

    /// Types `keys` and Enter.
    pub fn send(&self, pane: &str, keys: &str) {
        self.call(&["send-keys", "-t", pane, keys, "Enter"]);
    }

    /// Presses `keys` (tmux key names: `q`, `Escape`, `C-c`), without Enter.
    pub fn press(&self, pane: &str, keys: &str) {
        self.call(&["send-keys", "-t", pane, keys]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}
