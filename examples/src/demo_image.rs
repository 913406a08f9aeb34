//! The demo app as a container image: build the statically linked binary, check it really is static, and
//! write a `FROM scratch` build context for a release, so no registry is ever needed.
//!
//! Two releases built from the same binary share its layer and differ by the small `VERSION` layer (and the
//! migrations layer, when a release brings migrations): shipping v2 over v1 moves only what is new.

use std::path::{Path, PathBuf};

use connect_core::{Error, ErrorKind, Result};

/// The target the image's binary is built for; building with `--target` keeps the static flags from
/// invalidating the host build in the same target dir.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";
/// Where the binary lives in the image.
pub const IMAGE_BINARY: &str = "/app/connect-demo-app";
/// Where the migrations live in the image (`MIGRATIONS_DIR`).
pub const IMAGE_MIGRATIONS: &str = "/app/migrations";

/// Builds `connect-demo-app` statically linked (`-C target-feature=+crt-static`, release) in `workspace` and
/// returns its path, checked to have no dynamic loader. Takes minutes from cold, seconds once built.
pub fn build_static(workspace: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = std::process::Command::new(&cargo)
        .current_dir(workspace)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "-p",
            "connect-examples",
            "--bin",
            "connect-demo-app",
        ])
        .output()
        .map_err(|e| Error::new(ErrorKind::Unavailable, "build demo app", "cargo", e.to_string()))?;
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Failed,
            "build demo app",
            "cargo",
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
        .with_hint(format!("rustup target add {TARGET}")));
    }
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    let binary = target_dir.join(TARGET).join("release").join("connect-demo-app");
    if !is_statically_linked(&binary)? {
        return Err(Error::new(
            ErrorKind::Failed,
            "build demo app",
            binary.display().to_string(),
            "the binary needs a dynamic loader, it cannot run in a FROM scratch image",
        ));
    }
    Ok(binary)
}

/// Whether the ELF file at `path` runs without a dynamic loader (no `PT_INTERP` program header): a static or
/// static-pie executable.
pub fn is_statically_linked(path: &Path) -> Result<bool> {
    let target = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| Error::new(ErrorKind::NotFound, "read binary", &target, e.to_string()))?;
    let corrupt = |why: &str| Error::new(ErrorKind::Corrupt, "read ELF", &target, why.to_string());
    // 64-bit little-endian ELF only: the image is x86_64.
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(corrupt("not a 64-bit little-endian ELF file"));
    }
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .and_then(|b| usize::try_from(u64::from_le_bytes(b)).ok())
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return Err(corrupt("truncated header"));
    };
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let Some(p_type) = bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return Err(corrupt("truncated program headers"));
        };
        if p_type == PT_INTERP {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writes a build context for release `version` into `dir` (created): a `Dockerfile` and one directory per
/// layer: `bin/app/connect-demo-app`, `version/app/VERSION`, and `migrations/app/migrations/<name>/migration.sql`
/// (only Prisma's `migration_lock.toml` when `migrations` is `None`). Every file's mtime is pinned, so two releases of one binary share its layer
/// byte for byte, cache or no cache. Returns the Dockerfile's text.
///
/// The image: `FROM scratch`, `ENTRYPOINT ["/app/connect-demo-app"]` (so `docker run IMAGE migrate` is the
/// migration job), `PORT=3000`, `MIGRATIONS_DIR=/app/migrations`, and a `HEALTHCHECK` running the binary's
/// own `healthcheck` every second (a scratch image has no curl).
pub fn write_context(dir: &Path, binary: &Path, version: &str, migrations: Option<&Path>) -> Result<String> {
    if version.is_empty() || version.contains(char::is_whitespace) {
        return Err(Error::invalid(
            "write image context",
            version,
            "a version is one word",
        ));
    }
    let io = |op: &str, p: &Path, e: std::io::Error| {
        Error::new(ErrorKind::Failed, op, p.display().to_string(), e.to_string())
    };
    // Each layer's files sit under their own `<layer>/app/…` so the `/app` directory itself comes from the
    // context with a pinned mtime too; a COPY that had to create it would stamp it with the build time.
    let bin_dir = dir.join("bin/app");
    let version_dir = dir.join("version/app");
    for d in [&bin_dir, &version_dir] {
        std::fs::create_dir_all(d).map_err(|e| io("create context", d, e))?;
    }
    std::fs::copy(binary, bin_dir.join("connect-demo-app")).map_err(|e| io("copy binary", binary, e))?;
    std::fs::write(version_dir.join("VERSION"), format!("{version}\n"))
        .map_err(|e| io("write VERSION", dir, e))?;
    // Every release has the directory with Prisma's lock file, so a release without migrations applies
    // nothing instead of failing on a missing directory (and a build context never drops it as empty).
    let migrations_dir = dir.join("migrations/app/migrations");
    std::fs::create_dir_all(&migrations_dir).map_err(|e| io("copy migrations", &migrations_dir, e))?;
    std::fs::write(
        migrations_dir.join("migration_lock.toml"),
        "# Prisma's lock file: the provider the migrations are written for.\nprovider = \"postgresql\"\n",
    )
    .map_err(|e| io("copy migrations", &migrations_dir, e))?;
    if let Some(src) = migrations {
        for m in &crate::demo_app::load_migrations(src)? {
            let d = migrations_dir.join(&m.name);
            std::fs::create_dir_all(&d).map_err(|e| io("copy migrations", &d, e))?;
            std::fs::write(d.join("migration.sql"), &m.sql).map_err(|e| io("copy migrations", &d, e))?;
        }
    }
    let mut dockerfile = "FROM scratch\nCOPY bin/ /\nCOPY version/ /\nCOPY migrations/ /\n".to_string();
    dockerfile.push_str(&format!(
        "ENV PORT=3000 MIGRATIONS_DIR={IMAGE_MIGRATIONS}\n\
         EXPOSE 3000\n\
         HEALTHCHECK --interval=1s --timeout=2s --start-period=30s --retries=3 CMD [\"{IMAGE_BINARY}\", \"healthcheck\"]\n\
         ENTRYPOINT [\"{IMAGE_BINARY}\"]\n"
    ));
    std::fs::write(dir.join("Dockerfile"), &dockerfile).map_err(|e| io("write Dockerfile", dir, e))?;
    pin_mtimes(dir)?;
    Ok(dockerfile)
}

/// The modification time given to every file of a context: a layer's tar records it, so the same binary copied
/// at two different moments would otherwise make two different layers, and v2 would ship its binary again.
pub const CONTEXT_MTIME_UNIX: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn pin_mtimes(dir: &Path) -> Result<()> {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(CONTEXT_MTIME_UNIX);
    let io = |p: &Path, e: std::io::Error| {
        Error::new(
            ErrorKind::Failed,
            "set mtime",
            p.display().to_string(),
            e.to_string(),
        )
    };
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.is_dir() {
            pin_mtimes(&path)?;
        }
        std::fs::File::open(&path)
            .and_then(|f| f.set_times(std::fs::FileTimes::new().set_modified(when)))
            .map_err(|e| io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_executables_are_told_apart() {
        // Debian's ldconfig is static-pie; the test binary itself is dynamically linked.
        if Path::new("/sbin/ldconfig").is_file() {
            assert!(is_statically_linked(Path::new("/sbin/ldconfig")).unwrap());
        }
        let me = std::env::current_exe().unwrap();
        assert!(!is_statically_linked(&me).unwrap());
        let dir = std::env::temp_dir().join(format!("connect-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in [
            ("text", &b"#!/bin/sh\n"[..]),
            ("short", &[0x7f, b'E', b'L', b'F', 2, 1, 1][..]),
        ] {
            std::fs::write(dir.join(name), bytes).unwrap();
            assert_eq!(
                is_statically_linked(&dir.join(name)).unwrap_err().kind(),
                ErrorKind::Corrupt,
                "{name}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_release_context_has_the_binary_its_version_and_its_migrations() {
        let dir = std::env::temp_dir().join(format!("connect-context-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let me = std::env::current_exe().unwrap();
        let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let dockerfile = write_context(&dir.join("v2"), &me, "v2", Some(&migrations)).unwrap();
        assert!(
            dockerfile.starts_with("FROM scratch\nCOPY bin/ /\nCOPY version/ /\n"),
            "{dockerfile}"
        );
        assert!(dockerfile.contains("COPY migrations/ /\n"), "{dockerfile}");
        assert!(
            dockerfile.contains("ENTRYPOINT [\"/app/connect-demo-app\"]"),
            "{dockerfile}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("v2/version/app/VERSION")).unwrap(),
            "v2\n"
        );
        assert!(
            dir.join("v2/migrations/app/migrations/20260101000000_create_visits/migration.sql")
                .is_file()
        );
        let pinned = std::time::UNIX_EPOCH + std::time::Duration::from_secs(CONTEXT_MTIME_UNIX);
        for file in [
            "bin/app/connect-demo-app",
            "bin/app",
            "version/app",
            "migrations/app/migrations",
        ] {
            let mtime = std::fs::metadata(dir.join("v2").join(file))
                .unwrap()
                .modified()
                .unwrap();
            assert_eq!(mtime, pinned, "{file}");
        }
        write_context(&dir.join("v1"), &me, "v1", None).unwrap();
        let v1_migrations = dir.join("v1/migrations/app/migrations");
        assert!(v1_migrations.join("migration_lock.toml").is_file());
        assert_eq!(
            std::fs::read_dir(&v1_migrations).unwrap().count(),
            1,
            "no migration in v1"
        );
        let bad = write_context(&dir.join("x"), &me, "v 3", None).unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::InvalidInput);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
