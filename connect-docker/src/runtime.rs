//! [`ContainerRuntime`] for [`Docker`].

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use connect_core::model::{ImageRef, Release};
use connect_core::runtime::{
    ContainerInfo, ContainerSpec, ContainerStats, ExecOutput, ImageFile, ImageInfo, LogQuery, LogStream,
    OneOff,
};
use connect_core::ship::{ReleaseSource, ShipProgressFn, ShipReport};
use connect_core::{ContainerRuntime, Result};

use crate::client::Docker;

#[async_trait]
impl ContainerRuntime for Docker {
    async fn image(&self, image: &ImageRef) -> Result<Option<ImageInfo>> {
        self.image_info(&image.to_string()).await
    }

    async fn start(&self, spec: &ContainerSpec) -> Result<ContainerInfo> {
        self.start_slot(spec, &self.slot_options).await
    }

    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>> {
        self.inspect_container(name).await
    }

    async fn stats(&self, name: &str) -> Result<Option<ContainerStats>> {
        self.container_stats(name).await
    }

    async fn wait_healthy(&self, name: &str, deadline: Duration) -> Result<ContainerInfo> {
        self.wait_container_healthy(name, deadline).await
    }

    async fn stop(&self, name: &str, grace: Duration) -> Result<()> {
        self.stop_container(name, grace).await
    }

    async fn remove(&self, name: &str) -> Result<()> {
        self.remove_container(name).await
    }

    async fn logs_since(&self, name: &str, since: SystemTime) -> Result<Vec<String>> {
        self.container_logs_since(name, since).await
    }

    async fn exec(&self, name: &str, command: &[String]) -> Result<ExecOutput> {
        self.exec_in(name, command).await
    }

    async fn run_once(&self, job: &OneOff) -> Result<ExecOutput> {
        self.run_one_off(job).await
    }

    async fn list(&self, labels: &BTreeMap<String, String>) -> Result<Vec<ContainerInfo>> {
        self.list_containers(labels).await
    }

    async fn read_image_dir(&self, image: &ImageRef, dir: &str, max_bytes: u64) -> Result<Vec<ImageFile>> {
        Docker::read_image_dir(self, image, dir, max_bytes).await
    }

    async fn ship(
        &self,
        release: &Release,
        source: &ReleaseSource,
        progress: ShipProgressFn,
    ) -> Result<ShipReport> {
        self.ship_release(release, source, progress).await
    }

    async fn logs(&self, name: &str, query: LogQuery) -> Result<LogStream> {
        self.container_logs(name, query).await
    }

    async fn list_images(&self, repository: &str) -> Result<Vec<ImageInfo>> {
        self.images(Some(repository)).await
    }

    async fn delete_image(&self, image: &ImageRef) -> Result<()> {
        // Never forced: an image a container uses stays (Conflict), as the trait promises.
        self.remove_image(&image.to_string(), false).await
    }
}
