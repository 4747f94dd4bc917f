//! Request counts by verb, so a test can prove that something made no writes.

use std::sync::atomic::{AtomicU64, Ordering};

/// The verbs of the resource endpoints, as Kubernetes audit logs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
}

impl Verb {
    /// The verb as RBAC rules name it.
    pub fn rbac_name(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete
        )
    }
}

/// Requests served so far. A dry-run write is counted under `dry_run` and not as a write;
/// `/status` and `/scale` count under their verb, a delete of a collection as one delete.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub get: u64,
    pub list: u64,
    pub watch: u64,
    pub create: u64,
    pub update: u64,
    pub patch: u64,
    pub delete: u64,
    pub dry_run: DryRunCounts,
}

/// Dry-run (`dryRun=All`) writes by verb: they reached the server but stored nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DryRunCounts {
    pub create: u64,
    pub update: u64,
    pub patch: u64,
    pub delete: u64,
}

impl RequestCounts {
    /// Writes that were not dry runs (whether they succeeded or were refused).
    pub fn writes(&self) -> u64 {
        self.create + self.update + self.patch + self.delete
    }

    pub fn reads(&self) -> u64 {
        self.get + self.list + self.watch
    }

    pub fn dry_runs(&self) -> u64 {
        let d = &self.dry_run;
        d.create + d.update + d.patch + d.delete
    }
}

/// The server's counters: one atomic per verb, and one per verb for dry runs.
#[derive(Debug, Default)]
pub struct Counters {
    verbs: [AtomicU64; 7],
    dry_run: [AtomicU64; 7],
}

impl Counters {
    pub fn count(&self, verb: Verb, dry_run: bool) {
        let slot = verb as usize;
        if dry_run && verb.is_write() {
            self.dry_run[slot].fetch_add(1, Ordering::Relaxed);
        } else {
            self.verbs[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> RequestCounts {
        let v = |verb: Verb| self.verbs[verb as usize].load(Ordering::Relaxed);
        let d = |verb: Verb| self.dry_run[verb as usize].load(Ordering::Relaxed);
        RequestCounts {
            get: v(Verb::Get),
            list: v(Verb::List),
            watch: v(Verb::Watch),
            create: v(Verb::Create),
            update: v(Verb::Update),
            patch: v(Verb::Patch),
            delete: v(Verb::Delete),
            dry_run: DryRunCounts {
                create: d(Verb::Create),
                update: d(Verb::Update),
                patch: d(Verb::Patch),
                delete: d(Verb::Delete),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_runs_are_not_writes() {
        let c = Counters::default();
        c.count(Verb::Patch, true);
        c.count(Verb::Get, true);
        c.count(Verb::Create, false);
        let s = c.snapshot();
        assert_eq!(s.writes(), 1);
        assert_eq!(s.create, 1);
        assert_eq!(s.dry_run.patch, 1);
        assert_eq!(s.patch, 0);
        // A read has no dry-run form: it counts as a read.
        assert_eq!(s.get, 1);
        assert_eq!(s.dry_runs(), 1);
    }
}
