//! `[storage]`: where the data directory resolves, values out of range.
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};

use figment::Jail;

use super::test_support::{FILE, load_err};
use super::{FsyncPolicy, OnCorrupt, StorageBackend, load};

#[test]
fn default_data_dir_sits_next_to_the_config_file() {
    Jail::expect_with(|jail| {
        jail.create_dir("etc")?;
        jail.create_file("etc/cauldron.toml", "[sys]\nenabled = true\n")?;
        let config = load(Some(Path::new("etc/cauldron.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(config.storage.dir_path(), PathBuf::from("etc/data"));
        // without a file: the working directory
        let config = load(None).map_err(|e| e.to_string())?;
        assert_eq!(config.storage.dir_path(), PathBuf::from("data"));
        Ok(())
    });
}

#[test]
fn storage_keys_from_file_and_environment() {
    Jail::expect_with(|jail| {
        jail.create_dir("etc")?;
        jail.create_file(
            "etc/cauldron.toml",
            "[storage]\ndir = \"state\"\nfsync = \"always\"\non_corrupt = \"move-aside\"\n",
        )?;
        let config = load(Some(Path::new("etc/cauldron.toml"))).map_err(|e| e.to_string())?;
        assert!(config.storage.dir_path().ends_with("etc/state"));
        assert_eq!(config.storage.fsync, FsyncPolicy::Always);
        assert_eq!(config.storage.on_corrupt, OnCorrupt::MoveAside);
        jail.set_env("CAULDRON_STORAGE__BACKEND", "memory");
        jail.set_env("CAULDRON_STORAGE__DIR", "/var/lib/cauldron");
        let config = load(Some(Path::new("etc/cauldron.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(config.storage.backend, StorageBackend::Memory);
        assert_eq!(
            config.storage.dir_path(),
            PathBuf::from("/var/lib/cauldron")
        );
        Ok(())
    });
}

#[test]
fn out_of_range_and_unknown_values_name_the_key() {
    Jail::expect_with(|jail| {
        jail.create_file(FILE, "[storage]\ncache_mib = 0\n")?;
        let e = load_err();
        assert!(e.contains("storage.cache_mib") && e.contains(FILE), "{e}");
        jail.create_file(FILE, "[storage]\nfsync = \"sometimes\"\n")?;
        let e = load_err();
        assert!(e.contains("sometimes") && e.contains("fsync"), "{e}");
        Ok(())
    });
}
