//! The file `connect-ops init` writes: every key, commented, at the runbook's defaults.

/// A commented `connect.toml` for the runbook's layout. Reading it back gives the defaults (tested).
pub const TEMPLATE: &str = r#"# connect.toml: where the server and its parts are, how the app runs, and how carefully to deploy.
# Every key below is shown at its default; uncomment and edit what differs. Durations read as "30s", "2m".
# Secrets are never written here: use "${ENV_VAR}" (expanded when the file is read) or [app] env_file.

# Where the journal and the deploy lock live on the server.
# state_dir = "/opt/connect/state"

[server]
# The server, over SSH ("local" runs everything on this machine, without SSH). It may be a Host alias of
# your ssh config: its HostName, User, Port, IdentityFile, ProxyJump and UserKnownHostsFile then apply to
# every key below that is left out; a key set here wins.
host = "your-server"
# port = 2222                              # default: the ssh config's Port, else 22
# user = "deploy"                          # default: the ssh config's User, else your local user name
# key_file = "~/.ssh/id_ed25519"          # default: the ssh config's IdentityFile; the ssh-agent is tried too
# passphrase = "${DEPLOY_KEY_PASSPHRASE}"  # only for an encrypted key
# known_hosts = "~/.ssh/known_hosts"       # the server's key must be listed (ssh-keyscan, then check it);
#                                          # /etc/ssh/ssh_known_hosts is consulted too, never written
# proxy_jump = "ops@bastion.example:22"    # jump hosts, as `ssh -J` (comma separated); default: ProxyJump
# ssh_config = true                        # read ~/.ssh/config; or a path to another file; false: none
# connect_timeout = "10s"

[docker]
# socket = "/var/run/docker.sock"
# network = "connect_default"             # "host" shares the server's network
# health_command = ["curl", "-fsS", "--max-time", "2", "{url}"]
# health_interval = "2s"

[haproxy]
# backend = "be_app"
# admin_socket = "/run/haproxy/admin.sock"          # `stats socket … level admin`
# master_socket = "/run/haproxy/master.sock"        # `haproxy -W -S …`, for reloads
# state_file = "/var/lib/haproxy/server-state"      # kept across reloads
# HAProxy's runtime API has no login: the socket file's mode and group are its access control. To let a
# non-root deploy user switch traffic, give haproxy.cfg
#   stats socket /run/haproxy/admin.sock mode 660 level admin group deploy
# with the deploy user in group "deploy", and say the same here (connect_haproxy::ProxyConfig renders it).
# socket_mode = "600"                               # octal; bits for others are refused
# socket_user = "haproxy"
# socket_group = "deploy"

[database]
# patroni = ["http://127.0.0.1:8008", "http://127.0.0.1:8009"]   # as the server sees them
# host = "127.0.0.1"
# port = 5432
# user = "connect"
# password = "${CONNECT_DB_PASSWORD}"
# dbname = "connect"
# check_query = "SELECT count(*) FROM users"
# backup_dir = "/opt/connect/backups"      # pg_dump runs on the server and writes here
# pg_bin_dir = "/usr/lib/postgresql/15/bin" # when pg_dump is not on the server's PATH
# Patroni's REST API locked down (restapi.authentication, restapi.certfile): its guarded endpoints
# (switchover, restart) need the credentials; "https://" addresses are checked against patroni_ca_file.
# patroni_username = "patroni"
# patroni_password = "${PATRONI_PASSWORD}"
# patroni_ca_file = "/etc/connect/patroni-ca.pem"  # on this machine; the system's CAs when unset
# PostgreSQL's TLS, libpq's sslmode: disable, prefer, require, verify-ca, verify-full (the verify modes
# need ssl_root_cert); used by the SDK and by pg_dump/pg_restore on the server.
# sslmode = "disable"
# ssl_root_cert = "/etc/connect/pg-ca.pem"        # on this machine
# server_ssl_root_cert = "/etc/ssl/pg-ca.pem"     # the same CA on the server, when its path differs

# Continuous backups (pgBackRest: WAL archived through Patroni, base backups) and point-in-time recovery
# (`connect-ops pitr setup|backup|info|checksums`, `recover-db`). Without this table, none. Every Patroni
# member is listed with its data directory, port and socket directory.
# [database.pitr]
# repo = "/mnt/backup/pgbackrest"          # the repository, on the secondary disk
# state_dir = "/var/lib/connect-ops/pgbackrest"
# stanza = "connect"
# retention_full = 2                        # full backups kept
# archive_timeout = "1m"                    # the most a lost server loses (the runbook's RPO is 15 minutes)
# run_as = ["sudo", "-n", "-u", "postgres", "--"]   # how the login becomes postgres; [] when it is postgres
# process_max = 2
# deadline = "2h"
# etcd = "http://127.0.0.1:2379"           # Patroni's etcd: lets `recover` onto a fresh server reset its system id
# [[database.pitr.nodes]]
# member = "patroni1"
# data_dir = "/var/lib/postgresql/15/patroni1"
# port = 5432
# socket_dir = "/var/run/postgresql"

[redis]
# host = "127.0.0.1"
# port = 6379
# password = "${REDIS_PASSWORD}"
# start_command = ["systemctl", "start", "redis-server"]   # how `recover` starts it again after placing dump.rdb

[app]
# The image repository: release "v2" deploys "<image>:v2".
image = "connect"
# name = "connect"
# container_port = 3000
# health_path = "/api/health"
# smoke_paths = ["/"]                      # requested after the switch; 500 or no answer rolls back
# migration = ["npx", "prisma", "migrate", "deploy"]
# migrations_dir = "/app/prisma/migrations"  # in the image: pending migrations are linted before they run
# env = { NODE_ENV = "production", DATABASE_URL = "${DATABASE_URL}" }
# env_file = "/etc/connect/app.env"        # KEY=value lines on this machine, passed to the containers
# stop_grace = "10s"

# [slots.blue]
# container = "connect_app1"
# server = "app1"
# port = 3000
# [slots.green]
# container = "connect_app2"
# server = "app2"
# port = 3001

# Several app servers behind [server]'s HAProxy: each runs its own blue and green slots ([slots] above) and
# has two servers in the backend, <name>_blue and <name>_green. A deploy ships to every host in parallel,
# health-gates each, then switches them all in one HAProxy exchange; SSH settings not given come from [server].
# [[app_hosts]]
# name = "web1"
# host = "web1.internal"                       # or an ssh config alias; "local" for this machine
# port = 22
# user = "deploy"
# blue_server = "web1_blue"
# green_server = "web1_green"
# role = "web"                              # "worker": runs [roles.worker], no HAProxy server
# [fleet]
# min_healthy_hosts = 2                     # of the web hosts; unset: every host must be ready
# [roles.worker]                            # the release run for jobs on role = "worker" hosts
# command = ["bin/jobs"]                    # default: the image's command
# Also env (added to [app] env) and health_path (only if the worker answers HTTP; default: its image's
# health check, else running).

# Docker Swarm as the engine (instead of plain containers on [server]; not with [[app_hosts]]): blue and
# green are one-replica services named as [slots]' containers, each publishing its port in host mode on the
# node that runs it, so the HAProxy backend has a server per node and color, `<node>_blue` and
# `<node>_green` (only the node running the task passes its check); the switch moves a color's servers
# together. The manager is [server]'s engine; each other node that may run the app is listed, its engine
# reached over SSH with [server]'s settings where its entry is silent, so releases are shipped to it and
# its tasks' logs read.
# [swarm]
# manager_socket = "/var/run/docker.sock"   # the manager's engine on [server]; default: [docker] socket
# manager_name = "manager"                  # servers manager_blue, manager_green
# [[swarm.nodes]]
# name = "worker1"                          # servers worker1_blue, worker1_green; default: host
# host = "worker1.internal"                 # or an ssh config alias; "local" for this machine
# port = 22
# user = "deploy"
# socket = "/var/run/docker.sock"           # default: [docker] socket

[release]
# Where `deploy` and `ship` get a release the server lacks (neither context nor image: the server has it).
# Only the layers the server lacks are sent, each verified; a release the server has is not built again.
# context = "."                             # a directory with a Dockerfile on this machine
# build_on = "local"                        # this machine's Docker (DOCKER_HOST) builds; or "server"
# image = "connect:dev"                     # or an image on this machine, shipped as the release

[policy]
# health_deadline = "1m"
# migration_deadline = "30m"
# drain_deadline = "30s"
# router_deadline = "10s"
# lock_lease = "30s"                        # a dead deploy's lock expires this long after it stopped renewing
# disk_warn_percent = 80
# disk_fail_percent = 95
# disk_paths = ["/opt/connect"]
# max_error_lines = 10
# old_color = "warm_standby"                # or "balanced", or "retire_after" with retire_after = "1h"
# A migration that drops, renames or retypes what the old color still uses is refused (expand now,
# contract once the old color is retired); true lets it through.
# allow_destructive_migrations = false
# After a deploy succeeded, release images beyond the newest N are removed (never the live or standby one;
# a release shipped ahead of its deploy counts among the newest). Unset, nothing is removed.
# keep_releases = 5

[policy.backup]
# before_migration = true                   # a verified backup (dump, checksum, read back) before a migration
# every_deploy = false                      # back up on deploys without a migration too
# keep = 7
# deadline = "2h"

# The new color watched after the switch (and after an instant rollback): its 5xx share and response time
# (HAProxy's counters), restarts and error lines against the old color's before the switch. A breach rolls
# back to the warm standby. Without a window there is no watch.
[policy.watch]
# window = "2m"
# interval = "5s"
# max_5xx_increase_percent = 1.0            # points above the old color's share
# min_responses = 20                        # the 5xx share is judged from this many answers on
# max_response_time_factor = 3.0           # times the old color's average…
# response_time_floor = "200ms"             # …and above this
# max_restarts = 0
# max_error_lines_increase = 10

# Traffic moved to the new color in steps of weight, each held under the watch (which must have a window
# no shorter than its interval); a breach at any step rolls back. Without this table the switch is at once.
# [policy.canary]
# steps = [10, 50]                          # percent; the switch itself is the last step, 100 %
# hold = "1m"
[audit]
# `connect-ops audit` reports the server's hardening, each finding with a severity and its fix; `--fix`
# applies the safe ones (file modes; sshd, checked through a new SSH connection and reverted if it fails).
# public_ports = [22, 80, 443]              # reachable from outside; any other port must listen on loopback
# fail_on = "medium"                        # exit 6 at or above: info, low, medium, high, critical
# sshd_config = "/etc/ssh/sshd_config"
# sshd_reload = ["systemctl", "reload", "ssh"]   # SIGHUP: open sessions stay
# permit_root_login = "prohibit-password"   # what --fix sets instead of "yes"; "no" if nobody logs in as root
# secret_files = ["/opt/connect/.env.production.local"]   # files on the server that hold secrets

# Scheduled backup sets of what the WAL archive does not hold: Redis's dump.rdb, the uploads (rsync: only
# files changed since the previous set are copied, the others hard-linked), the journal and the configs
# listed, each set with a manifest (every file's size and SHA-256). `connect-ops backup-all` takes one; run
# it from a systemd timer (README). With this table, preflight fails when the newest set is older than
# max_age; without it, there are no sets.
# [backup_all]
# dir = "/backups/connect"                  # on the server (the secondary disk)
# keep = 7                                  # sets kept on the server
# max_age = "26h"                           # a daily timer, with slack
# redis = true
# uploads_dir = "/opt/connect/uploads"
# configs = ["/etc/haproxy/haproxy.cfg", "/etc/patroni/config.yml", "/etc/pgbackrest/pgbackrest.conf"]
# copy_to = "/var/backups/connect"          # on the machine running backup-all: the off-host copy
# copy_keep = 14
# `connect-ops recover` puts a whole server back from the newest copy in copy_to (or --from DIR): the configs,
# the database (pgBackRest, to the latest), Redis, the uploads, then deploys the release the set's journal
# names as live. `connect-ops recover --dry-run` lists what it would do and from which backups.

# Your commands at named points: before_deploy, after_ship, before_switch (a failure stops the deploy before
# traffic moves), after_deploy, after_rollback (a failure is reported, the outcome stands). They get
# CONNECT_HOOK, CONNECT_OPERATION, CONNECT_KIND, CONNECT_RELEASE, CONNECT_IMAGE, CONNECT_LIVE_BEFORE,
# CONNECT_LIVE_AFTER and CONNECT_HOLDER in their environment.
# [[hooks]]
# point = "before_switch"
# command = ["./scripts/smoke.sh"]
# site = "local"                            # or "server"
# timeout = "1m"

# The record of every operation (JSON, as in the journal) POSTed when it ends. A webhook that fails or is
# slow changes nothing but a warning.
# [[webhooks]]
# url = "${DEPLOY_WEBHOOK}"                 # from the environment: chat services put a secret in the URL
# timeout = "10s"
"#;
