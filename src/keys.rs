//! The master key that seals secrets at rest: where a node finds it, and `freshet keys`, the
//! operator's commands to make one and to rotate it.
//!
//! The key comes from `FRESHET_MASTER_KEY` or `--master-key-file`. The development profile,
//! given neither, keeps a generated key in `freshet-master-key` next to the SQLite database
//! (the working directory for PostgreSQL), readable by its owner only, as it does the admin
//! token: the quick start needs no setting, and the key is never logged.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use freshet_store::{MASTER_KEY_FILE, MasterKey, Store, StoreOptions};
use secrecy::ExposeSecret;

use crate::config::{Config, Profile, ServeArgs, redact_url};

/// Where a node's master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `FRESHET_MASTER_KEY`, or given by an embedder.
    Given,
    /// The operator's key file.
    File(PathBuf),
    /// The development profile's key file, `created` by this call or found.
    Development { path: PathBuf, created: bool },
}

/// The directory of a SQLite database URL (`sqlite://PATH`, `sqlite:PATH`); `None` for
/// PostgreSQL and in-memory databases.
fn sqlite_dir(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => Some(dir.to_path_buf()),
        _ => Some(PathBuf::from(".")),
    }
}

/// Where the development profile keeps its generated master key for `config`'s database.
pub fn development_key_path(config: &Config) -> PathBuf {
    sqlite_dir(config.database_url.expose_secret())
        .unwrap_or_else(|| PathBuf::from("."))
        .join(MASTER_KEY_FILE)
}

fn read_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the master key file {}", path.display()))?;
    MasterKey::from_base64(&text).with_context(|| format!("in {}", path.display()))
}

/// Writes `key` to a new file readable by its owner only; fails if the file exists.
pub fn write_new_key_file(path: &Path, key: &MasterKey) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{}", key.to_base64())?;
    file.sync_all()
}

/// The master key `config` names. In development without one, the generated key file's,
/// creating it when `create` (a node starting) and it does not exist yet.
pub fn master_key(config: &Config, create: bool) -> anyhow::Result<(MasterKey, KeySource)> {
    if let Some(key) = &config.master_key {
        return Ok((key.clone(), KeySource::Given));
    }
    if let Some(path) = &config.master_key_file {
        return Ok((read_key_file(path)?, KeySource::File(path.clone())));
    }
    if config.profile == Profile::Production {
        bail!(
            "master_key_file: the production profile needs --master-key-file or FRESHET_MASTER_KEY"
        );
    }
    let path = development_key_path(config);
    if path.exists() || !create {
        let key = read_key_file(&path)?;
        return Ok((
            key,
            KeySource::Development {
                path,
                created: false,
            },
        ));
    }
    let key = MasterKey::generate()?;
    match write_new_key_file(&path, &key) {
        Ok(()) => Ok((
            key,
            KeySource::Development {
                path,
                created: true,
            },
        )),
        // Another node on the same directory made it first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let key = read_key_file(&path)?;
            Ok((
                key,
                KeySource::Development {
                    path,
                    created: false,
                },
            ))
        }
        Err(e) => Err(e).with_context(|| format!("writing the master key to {}", path.display())),
    }
}

/// `freshet keys`: the master key that seals secrets at rest.
#[derive(Subcommand)]
pub enum Keys {
    /// Write a new random master key to FILE (readable by its owner only).
    New {
        /// The file to create; an existing file is never overwritten.
        file: PathBuf,
    },
    /// Rewrap the database's data keys under a new master key. Running nodes keep working;
    /// restart each with the new key. From then on the old key no longer opens the database.
    Rotate(Box<Rotate>),
}

/// `freshet keys rotate`.
#[derive(Args)]
pub struct Rotate {
    /// The new master key's file (`freshet keys new FILE` writes one). `FRESHET_NEW_MASTER_KEY`
    /// may hold the key itself instead.
    #[arg(long, value_name = "FILE")]
    pub new_master_key_file: Option<PathBuf>,
    /// The database and the current master key, as `freshet serve` takes them.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Runs a `freshet keys` command.
pub async fn run(command: Keys) -> anyhow::Result<()> {
    match command {
        Keys::New { file } => {
            let key = MasterKey::generate()?;
            write_new_key_file(&file, &key)
                .with_context(|| format!("creating {}", file.display()))?;
            println!(
                "wrote a new master key to {} (fingerprint {}): back it up apart from the database",
                file.display(),
                key.fingerprint()
            );
            Ok(())
        }
        Keys::Rotate(r) => rotate(*r).await,
    }
}

async fn rotate(r: Rotate) -> anyhow::Result<()> {
    let new = match (
        &r.new_master_key_file,
        std::env::var("FRESHET_NEW_MASTER_KEY"),
    ) {
        (Some(path), _) => read_key_file(path)?,
        (None, Ok(text)) => MasterKey::from_base64(&text).context("FRESHET_NEW_MASTER_KEY")?,
        (None, Err(_)) => {
            bail!(
                "new_master_key_file: give the new key (--new-master-key-file or FRESHET_NEW_MASTER_KEY)"
            )
        }
    };
    let config = Config::resolve(r.serve)?;
    let (old, source) = master_key(&config, false)?;
    if old.fingerprint() == new.fingerprint() {
        bail!("new_master_key_file: the new master key is the current one");
    }
    let url = config.database_url.expose_secret();
    let mut store = Store::connect(url, &StoreOptions::default())
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
    store.migrate().await.context("migrating the database")?;
    store
        .unlock(&old)
        .await
        .context("opening the data keys with the current master key")?;
    let n = store
        .rewrap_keys(&old, &new)
        .await
        .context("rewrapping the data keys")?;
    store.close().await;
    println!(
        "rewrapped {n} data key(s) from master key {} to {}",
        old.fingerprint(),
        new.fingerprint()
    );
    if let KeySource::Development { path, .. } = source {
        // The development key file is where the next start looks: it must hold the new key.
        fs::remove_file(&path).with_context(|| format!("replacing {}", path.display()))?;
        write_new_key_file(&path, &new).with_context(|| format!("writing {}", path.display()))?;
        println!("{} now holds the new key", path.display());
    } else {
        println!("restart each node with the new key; the old one no longer opens this database");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_development_key_lives_next_to_a_sqlite_database() {
        assert_eq!(
            sqlite_dir("sqlite:///var/lib/freshet/freshet.db"),
            Some("/var/lib/freshet".into())
        );
        assert_eq!(sqlite_dir("sqlite://./freshet.db"), Some(".".into()));
        assert_eq!(sqlite_dir("sqlite:freshet.db?mode=rwc"), Some(".".into()));
        assert_eq!(sqlite_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_dir("postgres://u@h/db"), None);
    }

    #[test]
    fn development_makes_a_private_key_once_and_production_demands_one() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("f.db").display());
        let config = Config::new(url.clone());
        assert!(master_key(&config, false).is_err(), "not made unless asked");
        let (first, source) = master_key(&config, true).unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        assert_eq!(
            source,
            KeySource::Development {
                path: path.clone(),
                created: true
            }
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, _) = master_key(&config, true).unwrap();
        assert_eq!(again.fingerprint(), first.fingerprint());

        let mut production = Config::new(url);
        production.profile = Profile::Production;
        assert!(master_key(&production, true).is_err());
        production.master_key = Some(first.clone());
        assert_eq!(master_key(&production, true).unwrap().1, KeySource::Given);
    }
}
