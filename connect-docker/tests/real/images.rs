//! Images: built, tagged, listed with their layers, pruned to the last releases, and files read out of
//! one without running it.

use std::collections::BTreeMap;

use connect_core::{ContainerRuntime, ErrorKind};
use connect_docker::ONE_OFF_LABEL;
use connect_docker::testing::test_app_context;

use crate::common::with_scope;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_tag_list_layers_and_prune_all_but_the_last_releases() {
    with_scope("prune", |docker, scope| async move {
        let base = scope.build_app(&docker, "r1").await.unwrap();
        let mut refs = vec![base.clone()];
        for (i, v) in ["r2", "r3", "r4"].iter().enumerate() {
            let ctx = test_app_context(
                Some(&base.to_string()),
                &[("release.txt", v.as_bytes().to_vec())],
                &[],
            )
            .unwrap();
            let _ = i;
            refs.push(scope.build(&docker, v, ctx).await.unwrap());
        }
        let r4 = docker.image_info(&refs[3].to_string()).await.unwrap().unwrap();
        let r1 = docker.image_info(&refs[0].to_string()).await.unwrap().unwrap();
        assert_eq!(
            r4.layers.len(),
            r1.layers.len() + 1,
            "one layer on top of the base"
        );
        assert_eq!(
            r4.layers[..r1.layers.len()],
            r1.layers[..],
            "shares the base layers"
        );
        let alias = scope.release("live").image;
        docker.tag(&refs[3].to_string(), &alias).await.unwrap();
        assert_eq!(
            docker.image_info(&alias.to_string()).await.unwrap().unwrap().id,
            r4.id
        );
        let listed = docker.images(Some(&scope.prefix)).await.unwrap();
        assert!(listed.iter().all(|i| !i.layers.is_empty()));
        assert_eq!(listed.iter().flat_map(|i| i.tags.iter()).count(), 5, "{listed:?}");

        // Keep the newest (r4 and its alias); r2 is the standby and is protected; r1 and r3 go.
        let report = docker
            .prune_releases(&scope.prefix, 1, &[&refs[1]])
            .await
            .unwrap();
        let mut removed = report.removed.clone();
        removed.sort();
        assert_eq!(removed, [refs[0].to_string(), refs[2].to_string()], "{report:?}");
        assert!(
            docker.image_info(&refs[1].to_string()).await.unwrap().is_some(),
            "standby kept"
        );
        assert!(
            docker.image_info(&refs[3].to_string()).await.unwrap().is_some(),
            "newest kept"
        );
        assert!(docker.image_info(&refs[0].to_string()).await.unwrap().is_none());

        let bad = docker
            .build_release(
                connect_docker::BuildContext::new()
                    .dockerfile("FROM scratch\nCOPY missing /x\n")
                    .unwrap(),
                &scope.release("bad"),
            )
            .await
            .expect_err("a failing build");
        assert_eq!(bad.kind(), ErrorKind::Failed);
        assert!(
            bad.to_string().contains(&format!("{}:bad", scope.prefix)),
            "{bad}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_files_are_read_out_of_an_image_without_running_it() {
    with_scope("read-dir", |docker, scope| async move {
        let create = b"CREATE TABLE users (id int, legacy text);\n".to_vec();
        let drop = b"ALTER TABLE users DROP COLUMN legacy;\n".to_vec();
        let context = test_app_context(
            None,
            &[
                ("migrations/20260101_create_users/migration.sql", create.clone()),
                ("migrations/20260201_drop_legacy/migration.sql", drop.clone()),
                (
                    "migrations/migration_lock.toml",
                    b"provider = \"postgresql\"\n".to_vec(),
                ),
            ],
            &[],
        )
        .unwrap();
        let image = scope.build(&docker, "v1", context).await.unwrap();

        let files = ContainerRuntime::read_image_dir(&docker, &image, "/migrations", 1 << 20)
            .await
            .unwrap();
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "20260101_create_users/migration.sql",
                "20260201_drop_legacy/migration.sql",
                "migration_lock.toml"
            ]
        );
        assert_eq!(files[0].data, create);
        assert_eq!(files[1].data, drop);

        let none = docker
            .read_image_dir(&image, "/no/such/dir", 1 << 20)
            .await
            .unwrap();
        assert!(none.is_empty(), "{none:?}");
        let big = docker
            .read_image_dir(&image, "/migrations", 10)
            .await
            .unwrap_err();
        assert_eq!(big.kind(), ErrorKind::Refused, "{big}");
        let bad = docker
            .read_image_dir(&image, "../etc", 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(bad.kind(), ErrorKind::InvalidInput, "{bad}");
        let missing = docker
            .read_image_dir(&scope.release("nope").image, "/migrations", 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");

        let left = docker
            .list_containers(&BTreeMap::from([(ONE_OFF_LABEL.to_string(), "true".to_string())]))
            .await
            .unwrap();
        assert!(
            left.iter().all(|c| !c.image.starts_with(&scope.prefix)),
            "the reading containers are removed: {left:?}"
        );
    })
    .await;
}
