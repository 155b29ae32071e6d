//! The metadata log: every [`MetadataCommand`] of a single-node cluster, appended and fsynced
//! before it takes effect, replayed at startup.
//!
//! Record format: `u32` payload length, `u32` CRC-32C of the payload, payload (JSON), all
//! big-endian. A record cut short at the end of the file is a write torn by a crash and is
//! truncated away; a bad record with more data after it is corruption and stops the broker.
//! Compaction rewrites the file as the shortest command list that rebuilds the image, through a
//! temporary file and an atomic rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::image::{MetadataCommand, MetadataImage};

/// File name inside the metadata directory.
pub const LOG_FILE: &str = "commands.log";
/// Largest record accepted when reading; a larger length is corruption.
const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;
const RECORD_HEADER_LEN: usize = 8;

/// The metadata log failed.
#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    /// An IO operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file holds a record that is damaged and not at the tail.
    #[error("metadata log {} is corrupt at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad record.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write or fsync failed; nothing more is written.
    #[error("metadata log {} failed earlier and accepts no more writes", path.display())]
    Poisoned {
        /// The file.
        path: PathBuf,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MetadataLogError + 'a {
    move |source| MetadataLogError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What opening the log found.
#[derive(Debug)]
pub struct Recovered {
    /// The commands, in order.
    pub commands: Vec<MetadataCommand>,
    /// Bytes of a torn final record that were cut off, if any.
    pub truncated_bytes: u64,
}

/// An open metadata log.
#[derive(Debug)]
pub struct MetadataLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    records: usize,
    poisoned: bool,
}

impl MetadataLog {
    /// Opens (creating if needed) the log in `dir` and reads every command.
    pub fn open(dir: &Path) -> Result<(MetadataLog, Recovered), MetadataLogError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        let path = dir.join(LOG_FILE);
        let existed = path.exists();
        let bytes = if existed {
            fs::read(&path).map_err(io_err("read", &path))?
        } else {
            Vec::new()
        };
        let (commands, valid_len) = decode_records(&path, &bytes)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let truncated_bytes = (bytes.len() - valid_len) as u64;
        if truncated_bytes > 0 {
            file.set_len(valid_len as u64)
                .map_err(io_err("truncate", &path))?;
            file.sync_all().map_err(io_err("fsync", &path))?;
        }
        if !existed {
            sync_dir(dir)?;
        }
        let log = MetadataLog {
            dir: dir.to_path_buf(),
            path,
            file,
            records: commands.len(),
            poisoned: false,
        };
        Ok((
            log,
            Recovered {
                commands,
                truncated_bytes,
            },
        ))
    }

    /// Number of records in the file.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Appends `command` and makes it durable before returning. A failure poisons the log.
    pub fn append(&mut self, command: &MetadataCommand) -> Result<(), MetadataLogError> {
        if self.poisoned {
            return Err(MetadataLogError::Poisoned {
                path: self.path.clone(),
            });
        }
        let record = encode_record(command);
        let result = self
            .file
            .write_all(&record)
            .and_then(|()| self.file.sync_data())
            .map_err(io_err("append to", &self.path));
        if result.is_err() {
            self.poisoned = true;
        } else {
            self.records += 1;
        }
        result
    }

    /// Replaces the file with the commands that rebuild `image` (compaction).
    pub fn compact(&mut self, image: &MetadataImage) -> Result<(), MetadataLogError> {
        if self.poisoned {
            return Err(MetadataLogError::Poisoned {
                path: self.path.clone(),
            });
        }
        let commands = commands_for(image);
        let tmp = self.dir.join(format!("{LOG_FILE}.compacting"));
        let mut out = File::create(&tmp).map_err(io_err("create", &tmp))?;
        for command in &commands {
            out.write_all(&encode_record(command))
                .map_err(io_err("write", &tmp))?;
        }
        out.sync_all().map_err(io_err("fsync", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io_err("rename onto", &self.path))?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_err("open", &self.path))?;
        self.records = commands.len();
        Ok(())
    }
}

/// The shortest command list that rebuilds `image` (broker registrations are not included: every
/// start registers afresh).
pub fn commands_for(image: &MetadataImage) -> Vec<MetadataCommand> {
    let mut commands = Vec::new();
    let dynamic = image.dynamic_configs();
    if !dynamic.cluster.is_empty() {
        commands.push(MetadataCommand::SetBrokerConfigs {
            node_id: None,
            configs: dynamic.cluster.clone(),
        });
    }
    for (node, configs) in &dynamic.per_broker {
        commands.push(MetadataCommand::SetBrokerConfigs {
            node_id: Some(*node),
            configs: configs.clone(),
        });
    }
    if image.next_producer_id() > 0 {
        commands.push(MetadataCommand::AllocateProducerIds {
            node_id: -1,
            first_producer_id: 0,
            next_producer_id: image.next_producer_id(),
        });
    }
    for topic in image.topics() {
        commands.push(MetadataCommand::CreateTopic {
            id: topic.id,
            name: topic.name.clone(),
            assignments: topic
                .partitions
                .iter()
                .map(|p| p.replicas.clone())
                .collect(),
            configs: topic.configs.clone(),
        });
    }
    commands
}

fn encode_record(command: &MetadataCommand) -> Vec<u8> {
    // Serialising plain data (strings, numbers, maps with string keys) cannot fail.
    let payload = serde_json::to_vec(command).unwrap_or_default();
    let mut record = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    record.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    record.extend_from_slice(&payload);
    record
}

/// Decodes records; returns them and the length of the valid prefix.
fn decode_records(
    path: &Path,
    bytes: &[u8],
) -> Result<(Vec<MetadataCommand>, usize), MetadataLogError> {
    let mut commands = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let corrupt = |reason: String| MetadataLogError::Corrupt {
            path: path.to_path_buf(),
            position: pos as u64,
            reason,
        };
        let Some(header) = bytes.get(pos..pos + RECORD_HEADER_LEN) else {
            break; // torn header at the tail
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD_BYTES {
            return Err(corrupt(format!(
                "record length {len} exceeds {MAX_RECORD_BYTES}"
            )));
        }
        let end = pos + RECORD_HEADER_LEN + len;
        let Some(payload) = bytes.get(pos + RECORD_HEADER_LEN..end) else {
            break; // torn payload at the tail
        };
        if crc32c::crc32c(payload) != crc {
            if end == bytes.len() {
                break; // the last record was torn mid-write
            }
            return Err(corrupt("CRC mismatch".into()));
        }
        let command = serde_json::from_slice(payload)
            .map_err(|e| corrupt(format!("undecodable command: {e}")))?;
        commands.push(command);
        pos = end;
    }
    Ok((commands, pos))
}

fn sync_dir(dir: &Path) -> Result<(), MetadataLogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn create(n: u128) -> MetadataCommand {
        MetadataCommand::CreateTopic {
            id: Uuid::from_u128(n),
            name: format!("t{n}"),
            assignments: vec![vec![1]],
            configs: BTreeMap::from([("retention.ms".to_string(), "5".to_string())]),
        }
    }

    #[test]
    fn commands_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, recovered) = MetadataLog::open(dir.path()).unwrap();
        assert!(recovered.commands.is_empty());
        log.append(&create(10)).unwrap();
        log.append(&MetadataCommand::DeleteTopic {
            id: Uuid::from_u128(10),
        })
        .unwrap();
        drop(log);
        let (log, recovered) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(
            recovered.commands,
            vec![
                create(10),
                MetadataCommand::DeleteTopic {
                    id: Uuid::from_u128(10)
                }
            ]
        );
        assert_eq!(log.records(), 2);
    }

    #[test]
    fn torn_tail_is_truncated_but_middle_corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        log.append(&create(10)).unwrap();
        log.append(&create(11)).unwrap();
        drop(log);
        let path = dir.path().join(LOG_FILE);
        let full = fs::read(&path).unwrap();

        fs::write(&path, &full[..full.len() - 3]).unwrap();
        let (_, recovered) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(recovered.commands, vec![create(10)]);
        assert!(recovered.truncated_bytes > 0);
        let (_, recovered) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(recovered.truncated_bytes, 0, "truncation is durable");

        let mut damaged = full.clone();
        damaged[RECORD_HEADER_LEN + 2] ^= 0xff;
        fs::write(&path, &damaged).unwrap();
        assert!(matches!(
            MetadataLog::open(dir.path()),
            Err(MetadataLogError::Corrupt { .. })
        ));

        let mut huge = full;
        huge[0] = 0xff;
        fs::write(&path, &huge).unwrap();
        assert!(matches!(
            MetadataLog::open(dir.path()),
            Err(MetadataLogError::Corrupt { .. })
        ));
    }

    #[test]
    fn compaction_rebuilds_the_same_image() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        let mut image = MetadataImage::empty("c")
            .apply(&MetadataCommand::RegisterBroker(
                super::super::image::BrokerRegistration {
                    node_id: 1,
                    rack: None,
                    endpoints: vec![],
                    fenced: false,
                },
            ))
            .unwrap();
        for command in [
            create(10),
            create(11),
            MetadataCommand::DeleteTopic {
                id: Uuid::from_u128(10),
            },
        ] {
            image = image.apply(&command).unwrap();
            log.append(&command).unwrap();
        }
        log.compact(&image).unwrap();
        assert_eq!(log.records(), 1);
        drop(log);
        let (_, recovered) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(recovered.commands, vec![create(11)]);
    }
}
