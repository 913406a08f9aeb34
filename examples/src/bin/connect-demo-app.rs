//! The demo app of the end-to-end run: the stand-in for the Connect web app (see `connect_examples::demo_app`).
//!
//! ```text
//! connect-demo-app              # serve on $PORT (3000); DATABASE_URL, REDIS_URL, APP_MODE, APP_VERSION…
//! connect-demo-app migrate [DIR] # apply DIR/<name>/migration.sql (or $MIGRATIONS_DIR, or the embedded one)
//! connect-demo-app healthcheck   # exit 0 when GET /api/health on 127.0.0.1:$PORT answers 200
//! ```

use std::process::ExitCode;

use connect_examples::demo_app::{self, App, Config};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ERROR connect-demo-app: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            [] | ["serve"] => serve().await,
            ["migrate"] => migrate(None).await,
            ["migrate", dir] => migrate(Some(dir.into())).await,
            ["healthcheck"] => {
                let port = Config::from_env()?.port;
                demo_app::healthcheck(port).await
            }
            other => Err(connect_core::Error::invalid(
                "parse arguments",
                "connect-demo-app",
                format!("unknown arguments {other:?}"),
            )
            .with_hint("use no argument (serve), `migrate [DIR]` or `healthcheck`")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR connect-demo-app: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> connect_core::Result<()> {
    let config = Config::from_env()?;
    let addr = (config.bind, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        connect_core::Error::new(
            connect_core::ErrorKind::Unavailable,
            "listen",
            format!("{}:{}", addr.0, addr.1),
            e.to_string(),
        )
    })?;
    eprintln!(
        "connect-demo-app {} listening on {}:{} (mode {}, database {}, redis {})",
        config.version,
        addr.0,
        addr.1,
        config.mode.as_str(),
        if config.database_url.is_some() {
            "configured"
        } else {
            "not configured"
        },
        if config.redis_url.is_some() {
            "configured"
        } else {
            "not configured"
        },
    );
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| {
            connect_core::Error::new(
                connect_core::ErrorKind::Unsupported,
                "listen for SIGTERM",
                "connect-demo-app",
                e.to_string(),
            )
        })?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("connect-demo-app: stopping, finishing in-flight requests");
    };
    demo_app::serve(listener, App::new(config), shutdown).await?;
    eprintln!("connect-demo-app: stopped");
    Ok(())
}

async fn migrate(dir: Option<std::path::PathBuf>) -> connect_core::Result<()> {
    let url = std::env::var("DATABASE_URL").map_err(|_| {
        connect_core::Error::invalid("migrate", "DATABASE_URL", "not set")
            .with_hint("set DATABASE_URL=postgresql://user@host:port/db")
    })?;
    let migrations = match demo_app::migrations_source(dir) {
        Some(dir) => demo_app::load_migrations(&dir)?,
        None => demo_app::embedded_migrations(),
    };
    let applied = demo_app::migrate(&url, &migrations).await?;
    if applied.is_empty() {
        println!("No pending migrations to apply.");
    }
    for a in &applied {
        println!("Applied migration {} in {} ms", a.name, a.duration.as_millis());
    }
    Ok(())
}
