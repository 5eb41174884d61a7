//! Helpers the engine's integration tests share (each test file uses some of them).
#![allow(dead_code, clippy::unwrap_used)]
use std::path::Path;

/// Runs `make`'s future on a fresh glommio executor and waits for it.
pub fn run<F: std::future::Future<Output = ()> + 'static>(make: impl FnOnce() -> F + Send + 'static) {
    glommio::LocalExecutorBuilder::default().spawn(make).unwrap().join().unwrap();
}

/// Copies a partition directory as a crash would leave it (what is in the files now).
pub fn crash_image(dir: &Path, image: &Path) {
    std::fs::create_dir_all(image).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, image.join(path.file_name().unwrap())).unwrap();
    }
}
