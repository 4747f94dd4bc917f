//! The tantivy index on disk: opening it, the writer thread that owns the one `IndexWriter`,
//! and searches. Every call here blocks; callers run them off the async runtime's threads.

use std::path::{Path, PathBuf};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, Query, QueryParser};
use tantivy::schema::Value as _;
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument};
use tokio::sync::{mpsc, oneshot, watch};

use crate::record::Record;
use crate::schema::{self, Fields, name};

/// Memory the writer may use before it flushes a segment (tantivy's minimum is 15 MB).
const WRITER_MEMORY: usize = 32 * 1024 * 1024;
/// Most results one search returns.
pub const MAX_LIMIT: usize = 1000;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot open the audit index in {dir}: {reason}")]
    Open { dir: PathBuf, reason: String },
    #[error(
        "audit index in {dir} has an unreadable commit payload {payload:?}; remove the directory to rebuild it from the log"
    )]
    Payload { dir: PathBuf, payload: String },
    #[error("audit index write failed: {0}")]
    Write(String),
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query does not parse (the caller's fault).
    #[error("invalid query: {0}")]
    Query(String),
    #[error("search failed: {0}")]
    Index(String),
}

/// The payload of each commit: the last stream sequence the commit covers, and the id of the
/// event there (to recognise the same log at the next start).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// An open index: what searches need (cheap to clone).
#[derive(Clone)]
pub struct AuditIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    dir: PathBuf,
}

/// One page of search results.
#[derive(Debug, Clone, Serialize)]
pub struct Hits {
    pub total: usize,
    /// Events, newest (highest sequence) first.
    pub hits: Vec<serde_json::Value>,
}

impl AuditIndex {
    /// Opens the index in `dir`, creating the directory and the index if needed. Returns it
    /// with where it stopped (sequence 0 when new).
    pub fn open(dir: &Path) -> Result<(Self, Resume), IndexError> {
        let open_err = |reason: String| IndexError::Open {
            dir: dir.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(e.to_string()))?;
        let directory = MmapDirectory::open(dir).map_err(|e| open_err(e.to_string()))?;
        let (schema, fields) = schema::build();
        let index =
            Index::open_or_create(directory, schema).map_err(|e| open_err(e.to_string()))?;
        let metas = index.load_metas().map_err(|e| open_err(e.to_string()))?;
        let last = match metas.payload {
            None => Resume::default(),
            Some(p) => serde_json::from_str::<Resume>(&p).map_err(|_| IndexError::Payload {
                dir: dir.to_path_buf(),
                payload: p.clone(),
            })?,
        };
        // Reloaded by the writer after each commit, so searches see an event within one
        // commit interval of its being read.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| open_err(e.to_string()))?;
        Ok((
            Self {
                index,
                reader,
                fields,
                dir: dir.to_path_buf(),
            },
            last,
        ))
    }

    /// The directory the index lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many documents searches see.
    pub fn documents(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Starts the writer thread: it indexes the batches sent on the returned channel, commits
    /// each with its last sequence, and publishes that sequence on `indexed` once searchable;
    /// a [`Command::Empty`] empties the index (for a rebuild from the start of the log).
    /// Closing the channel commits nothing more and ends the thread; the result of the thread
    /// arrives on the returned receiver.
    ///
    /// With `reset`, the thread first empties the index (it holds entries the log does not:
    /// the stream was recreated), so that it is rebuilt from the start of the log.
    pub fn start_writer(
        &self,
        indexed: watch::Sender<u64>,
        reset: bool,
        metrics: IndexMetrics,
    ) -> Result<Writer, IndexError> {
        let writer: IndexWriter = self
            .index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(|e| IndexError::Open {
                dir: self.dir.clone(),
                reason: e.to_string(),
            })?;
        // Small: backpressure on the log reader while a commit is slow.
        let (tx, rx) = mpsc::channel(2);
        let (done_tx, done_rx) = oneshot::channel();
        let this = self.clone();
        std::thread::Builder::new()
            .name("audit-index-writer".into())
            .spawn(move || {
                let result = this.write_loop(writer, rx, &indexed, reset, &metrics);
                if let Err(e) = &result {
                    tracing::error!(error = %e, "audit index writer stopped");
                }
                let _ = done_tx.send(result);
            })
            .map_err(|e| IndexError::Write(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            batches: tx,
            done: done_rx,
        })
    }

    fn write_loop(
        &self,
        mut writer: IndexWriter,
        mut commands: mpsc::Receiver<Command>,
        indexed: &watch::Sender<u64>,
        reset: bool,
        metrics: &IndexMetrics,
    ) -> Result<(), IndexError> {
        let write = |e: tantivy::TantivyError| IndexError::Write(e.to_string());
        if reset {
            self.empty(&mut writer, indexed, metrics)?;
        }
        while let Some(command) = commands.blocking_recv() {
            let batch = match command {
                Command::Index(batch) => batch,
                Command::Empty { done } => {
                    self.empty(&mut writer, indexed, metrics)?;
                    tracing::info!(dir = %self.dir.display(), "audit index emptied for a rebuild");
                    let _ = done.send(());
                    continue;
                }
            };
            for record in &batch.records {
                writer
                    .add_document(record.to_document(&self.fields))
                    .map_err(write)?;
            }
            let resume = Resume {
                sequence: batch.last_sequence,
                id: batch.records.last().and_then(|r| r.id.clone()),
            };
            self.commit(&mut writer, resume)?;
            indexed.send_replace(batch.last_sequence);
            metrics
                .indexed_sequence
                .set(i64::try_from(batch.last_sequence).unwrap_or(i64::MAX));
            metrics.documents_indexed.inc_by(batch.records.len() as u64);
            tracing::debug!(
                documents = batch.records.len(),
                stream.sequence = batch.last_sequence,
                "audit index committed"
            );
        }
        writer.wait_merging_threads().map_err(write)?;
        Ok(())
    }

    /// Removes every document, durably (with a commit back at sequence 0), and says so.
    fn empty(
        &self,
        writer: &mut IndexWriter,
        indexed: &watch::Sender<u64>,
        metrics: &IndexMetrics,
    ) -> Result<(), IndexError> {
        writer
            .delete_all_documents()
            .map_err(|e| IndexError::Write(e.to_string()))?;
        self.commit(writer, Resume::default())?;
        indexed.send_replace(0);
        metrics.indexed_sequence.set(0);
        Ok(())
    }

    /// Commits what was added, with `resume` as the commit payload (atomically with the
    /// documents), and makes it visible to searches.
    fn commit(&self, writer: &mut IndexWriter, resume: Resume) -> Result<(), IndexError> {
        let write = |e: tantivy::TantivyError| IndexError::Write(e.to_string());
        let payload =
            serde_json::to_string(&resume).map_err(|e| IndexError::Write(e.to_string()))?;
        let mut commit = writer.prepare_commit().map_err(write)?;
        commit.set_payload(&payload);
        commit.commit().map_err(write)?;
        self.reader.reload().map_err(write)
    }

    /// Searches with the query language (default fields `text`, `subject`, `type`; terms are
    /// ANDed), newest first. An empty query matches everything.
    pub fn search(&self, query: &str, limit: usize) -> Result<Hits, SearchError> {
        let query: Box<dyn Query> = if query.trim().is_empty() {
            Box::new(AllQuery)
        } else {
            let mut parser = QueryParser::for_index(
                &self.index,
                vec![self.fields.text, self.fields.subject, self.fields.type_name],
            );
            parser.set_conjunction_by_default();
            parser
                .parse_query(query)
                .map_err(|e| SearchError::Query(e.to_string()))?
        };
        let searcher = self.reader.searcher();
        let failed = |e: tantivy::TantivyError| SearchError::Index(e.to_string());
        let total = searcher.search(&query, &Count).map_err(failed)?;
        let limit = limit.min(MAX_LIMIT);
        if limit == 0 {
            return Ok(Hits {
                total,
                hits: Vec::new(),
            });
        }
        let top = searcher
            .search(
                &query,
                &TopDocs::with_limit(limit).order_by_fast_field::<u64>(name::SEQUENCE, Order::Desc),
            )
            .map_err(failed)?;
        let mut hits = Vec::with_capacity(top.len());
        for (_, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(failed)?;
            let line = doc
                .get_first(self.fields.event)
                .and_then(|v| v.as_str())
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(serde_json::Value::Null);
            hits.push(line);
        }
        Ok(Hits { total, hits })
    }
}

/// What the writer thread is asked to do, in order.
#[derive(Debug)]
pub enum Command {
    /// Index and commit these records.
    Index(Batch),
    /// Remove every document (a rebuild from the start of the log follows); `done` is
    /// answered once that is committed.
    Empty { done: oneshot::Sender<()> },
}

/// The handle on the writer thread.
pub struct Writer {
    /// Where commands go; dropping it ends the thread once the commands sent are done.
    pub batches: mpsc::Sender<Command>,
    /// The thread's result, sent as it ends.
    pub done: oneshot::Receiver<Result<(), IndexError>>,
}

/// The index's metrics on `/metrics`.
#[derive(Clone, Default)]
pub struct IndexMetrics {
    /// `configsync_audit_indexed_sequence`: the last stream sequence searchable.
    pub indexed_sequence: Gauge,
    /// `configsync_audit_documents_indexed_total`: documents added by this process.
    pub documents_indexed: Counter,
}

impl IndexMetrics {
    /// Registers the metrics with the service's registry.
    pub fn register(&self, metrics: &configsync_core::metrics::Metrics) {
        metrics.register(
            "audit_indexed_sequence",
            "The last stream sequence the audit index holds",
            self.indexed_sequence.clone(),
        );
        metrics.register(
            "audit_documents_indexed",
            "Documents added to the audit index by this process",
            self.documents_indexed.clone(),
        );
    }
}

/// Records to index and commit together, in log order.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    /// The sequence of the last entry read (the commit payload).
    pub last_sequence: u64,
}
