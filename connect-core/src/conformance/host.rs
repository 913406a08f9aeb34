use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::assert_kind;
use crate::error::ErrorKind;
use crate::host::{Command, Endpoint, Host, HostExt, PutOptions};

/// The promises of [`Host`]: programs get their arguments unchanged and their output kept apart; files are
/// written whole; exclusive creation refuses an existing file; missing files are `NotFound`; byte streams
/// carry bytes both ways.
///
/// `scratch` is an empty directory on the host the suite may write to; `echo` an endpoint on the host that
/// sends back what it receives, if the test has one.
pub async fn host_suite(host: &dyn Host, scratch: &str, echo: Option<Endpoint>) {
    let out = host
        .run(&Command::new(["echo", "it's $(not) a `shell`; *"]))
        .await
        .expect("run echo");
    assert!(out.success(), "echo exits 0: {out:?}");
    assert_eq!(
        out.stdout_text(),
        "it's $(not) a `shell`; *\n",
        "arguments arrive unchanged"
    );

    let out = host.run(&Command::new(["false"])).await.expect("run false");
    assert_eq!(
        out.status,
        Some(1),
        "a failing program's status is kept, not turned into an error"
    );
    assert_kind(
        host.run_checked(&Command::new(["false"])).await,
        ErrorKind::Failed,
        "run_checked(false)",
    );

    let out = host
        .run(&Command::new(["cat"]).stdin(b"from stdin".to_vec()))
        .await
        .expect("run cat");
    assert_eq!(out.stdout, b"from stdin", "stdin reaches the program");

    assert_kind(
        host.run(&Command::new(["echo", "a\0b"])).await,
        ErrorKind::InvalidInput,
        "a NUL argument",
    );
    assert_kind(
        host.run(&Command::default()).await,
        ErrorKind::InvalidInput,
        "an empty command",
    );

    let path = format!("{scratch}/conformance.txt");
    assert!(
        host.read_file(&path).await.expect("read missing").is_none(),
        "a missing file reads as None"
    );
    assert_kind(
        host.get_file(&path).await.map(drop),
        ErrorKind::NotFound,
        "get_file of a missing file",
    );
    let n = host
        .write_file(&path, b"first".to_vec(), PutOptions::default())
        .await
        .expect("write");
    assert_eq!(n, 5, "put_file returns the bytes written");
    host.write_file(&path, b"second version".to_vec(), PutOptions::default())
        .await
        .expect("overwrite");
    assert_eq!(
        host.read_file(&path).await.expect("read").as_deref(),
        Some(&b"second version"[..])
    );
    assert_kind(
        host.write_file(
            &path,
            b"x".to_vec(),
            PutOptions {
                create_new: true,
                ..PutOptions::default()
            },
        )
        .await,
        ErrorKind::Conflict,
        "create_new over an existing file",
    );
    assert_eq!(
        host.read_file(&path).await.expect("read").as_deref(),
        Some(&b"second version"[..]),
        "a refused create_new leaves the file"
    );

    // Missing parents are made (the new ones 0700), for exclusive creation too (a deploy lock in a
    // `state_dir` that does not exist yet); a file in the way is refused, naming the directory and the fix.
    let nested = format!("{scratch}/made/on/demand.txt");
    host.write_file(&nested, b"deep".to_vec(), PutOptions::default())
        .await
        .expect("put_file makes missing parents");
    assert_eq!(
        host.read_file(&nested).await.expect("read").as_deref(),
        Some(&b"deep"[..])
    );
    let lock = format!("{scratch}/fresh-state/deploy.lock");
    let exclusive = PutOptions {
        mode: 0o600,
        create_new: true,
    };
    host.write_file(&lock, b"lock".to_vec(), exclusive)
        .await
        .expect("create_new makes missing parents too");
    let dir = format!("{scratch}/made/on");
    let stat = host
        .run(&Command::new(["stat", "-c", "%a", &dir]))
        .await
        .expect("run stat");
    // The in-memory host has no directories and no stat: only real ones are checked.
    if stat.success() {
        assert_eq!(
            stat.stdout_text().trim(),
            "700",
            "a directory put_file made is private"
        );
    }
    let blocked = format!("{nested}/below.txt");
    let e = host
        .write_file(&blocked, b"x".to_vec(), PutOptions::default())
        .await
        .expect_err("a parent that is a file");
    assert_eq!(e.kind(), ErrorKind::Failed, "{e}");
    assert!(
        e.message().contains(&nested) && e.hint() == Some(crate::host::PARENT_HINT),
        "the error names the directory and the fix: {e}"
    );
    for p in [&nested, &lock] {
        host.remove_file(p).await.expect("remove");
    }

    let moved = format!("{scratch}/moved.txt");
    host.rename(&path, &moved).await.expect("rename");
    assert!(
        host.read_file(&path).await.expect("read").is_none(),
        "rename removes the old name"
    );
    host.remove_file(&moved).await.expect("remove");
    assert_kind(
        host.remove_file(&moved).await,
        ErrorKind::NotFound,
        "removing a missing file",
    );

    let usage = host.disk_usage(scratch).await.expect("disk usage");
    assert!(
        usage.total_bytes > 0 && usage.available_bytes <= usage.total_bytes,
        "disk usage is sane: {usage:?}"
    );
    assert!(usage.used_percent() <= 100);

    assert!(
        host.connect(&Endpoint::Unix(format!("{scratch}/nobody-listens.sock")))
            .await
            .is_err(),
        "no listener, no stream"
    );
    if let Some(echo) = echo {
        let mut stream = host.connect(&echo).await.expect("connect to the echo endpoint");
        stream
            .write_all(b"ping over the stream")
            .await
            .expect("write to stream");
        let mut buf = [0u8; 20];
        stream.read_exact(&mut buf).await.expect("read from stream");
        assert_eq!(&buf, b"ping over the stream", "bytes come back");
    }
}
