//! A snapshot diff report as HDFS's paged listing carries it
//! (`getSnapshotDiffReportListing`, WebHDFS `GETSNAPSHOTDIFFLISTING`):
//! three lists of entries with inode ids, from which the client rebuilds
//! the report (Hadoop's `SnapshotDiffReportGenerator`). Every entry is seen
//! from the earlier state to the later, whichever order was asked for
//! (`is_from_earlier` tells the client which): a created entry exists in
//! the later state only. A modified directory is a *reference* entry whose
//! `dir_id` is its own id; the created and deleted entries of its children
//! carry that `dir_id`. A rename is a deleted reference entry (with its
//! target) and a created reference entry, both with the moved inode's id.

use super::{DiffType, SnapshotDiffReport};

/// HDFS's `dfs.namenode.snapshotdiff.listing.limit` default.
pub const DEFAULT_LIMIT: usize = 1000;

/// Which list an entry goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Modified,
    Created,
    Deleted,
}

/// HDFS's `DiffReportListingEntry`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingEntry {
    pub dir_id: u64,
    pub file_id: u64,
    /// Relative to the snapshot root ("" is the root).
    pub path: String,
    pub is_reference: bool,
    /// A rename's path in the later state.
    pub target: Option<String>,
}

/// One page of the listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListingPage {
    pub modified: Vec<ListingEntry>,
    pub created: Vec<ListingEntry>,
    pub deleted: Vec<ListingEntry>,
    pub is_from_earlier: bool,
    /// The cursor of the next page (HDFS's `lastPath`, `lastIndex`):
    /// `("", -1)` after the last one.
    pub last_path: String,
    pub last_index: i32,
}

impl SnapshotDiffReport {
    /// Every listing entry, in the report's order.
    pub fn listing(&self) -> Vec<(ListKind, ListingEntry)> {
        let mut out = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            // Back to the earlier-to-later view the listing uses.
            let (kind, source, target, parent, target_parent) = match (self.from_earlier, e.kind) {
                (false, DiffType::Create) => {
                    (DiffType::Delete, &e.source, None, Some(e.parent), None)
                }
                (false, DiffType::Delete) => {
                    (DiffType::Create, &e.source, None, Some(e.parent), None)
                }
                (false, DiffType::Rename) => match &e.target {
                    Some(t) => (
                        DiffType::Rename,
                        t,
                        Some(&e.source),
                        e.target_parent,
                        Some(e.parent),
                    ),
                    None => continue,
                },
                (_, k) => (
                    k,
                    &e.source,
                    e.target.as_ref(),
                    Some(e.parent),
                    e.target_parent,
                ),
            };
            let parent = parent.unwrap_or(e.parent);
            let entry =
                |dir_id, path: &String, is_reference, target: Option<&String>| ListingEntry {
                    dir_id,
                    file_id: e.id,
                    path: path.clone(),
                    is_reference,
                    target: target.cloned(),
                };
            match kind {
                DiffType::Modify if e.dir => {
                    out.push((ListKind::Modified, entry(e.id, source, true, None)))
                }
                DiffType::Modify => {
                    out.push((ListKind::Modified, entry(parent, source, false, None)))
                }
                DiffType::Create => {
                    out.push((ListKind::Created, entry(parent, source, false, None)))
                }
                DiffType::Delete => {
                    out.push((ListKind::Deleted, entry(parent, source, false, None)))
                }
                DiffType::Rename => {
                    let Some(t) = target else { continue };
                    out.push((ListKind::Deleted, entry(parent, source, true, Some(t))));
                    if let Some(tp) = target_parent {
                        out.push((ListKind::Created, entry(tp, t, true, None)));
                    }
                }
            }
        }
        out
    }

    /// The page of at most `limit` entries that starts at cursor `index`
    /// (negative: the first page); the returned cursor names the next.
    pub fn listing_page(&self, index: i32, limit: usize) -> ListingPage {
        let all = self.listing();
        let start = (index.max(0) as usize).min(all.len());
        let end = start.saturating_add(limit.max(1)).min(all.len());
        let mut page = ListingPage {
            is_from_earlier: self.from_earlier,
            last_index: -1,
            ..ListingPage::default()
        };
        for (kind, e) in &all[start..end] {
            match kind {
                ListKind::Modified => page.modified.push(e.clone()),
                ListKind::Created => page.created.push(e.clone()),
                ListKind::Deleted => page.deleted.push(e.clone()),
            }
        }
        if end < all.len() {
            // HDFS names the directory it stopped in; the index is what
            // finds the place again here.
            page.last_path = all[end - 1].1.path.clone();
            page.last_index = i32::try_from(end).unwrap_or(i32::MAX);
        }
        page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::DiffEntry;

    fn e(kind: DiffType, source: &str, target: Option<&str>, id: u64, dir: bool) -> DiffEntry {
        DiffEntry {
            kind,
            source: source.into(),
            target: target.map(str::to_string),
            id,
            dir,
            parent: if source.contains('/') { 2 } else { 1 },
            target_parent: target.map(|t| if t.contains('/') { 2 } else { 1 }),
        }
    }

    fn report(from_earlier: bool, entries: Vec<DiffEntry>) -> SnapshotDiffReport {
        SnapshotDiffReport {
            root: "/d".into(),
            from: "s1".into(),
            to: "s2".into(),
            from_earlier,
            entries,
        }
    }

    #[test]
    fn entries_become_reference_and_plain_listing_entries() {
        let r = report(
            true,
            vec![
                e(DiffType::Modify, "", None, 1, true),
                e(DiffType::Create, "new", None, 5, false),
                e(DiffType::Delete, "old", None, 6, false),
                e(DiffType::Rename, "a", Some("sub/b"), 7, false),
                e(DiffType::Modify, "sub", None, 2, true),
                e(DiffType::Modify, "sub/f", None, 8, false),
            ],
        );
        let l = r.listing();
        let kinds: Vec<ListKind> = l.iter().map(|x| x.0).collect();
        use ListKind::*;
        assert_eq!(
            kinds,
            [Modified, Created, Deleted, Deleted, Created, Modified, Modified]
        );
        assert_eq!((l[0].1.dir_id, l[0].1.is_reference), (1, true));
        assert_eq!((l[1].1.dir_id, l[1].1.file_id), (1, 5));
        let (del, cre) = (&l[3].1, &l[4].1);
        assert_eq!((del.dir_id, del.file_id, del.is_reference), (1, 7, true));
        assert_eq!(del.target.as_deref(), Some("sub/b"));
        assert_eq!(
            (cre.dir_id, cre.file_id, cre.path.as_str()),
            (2, 7, "sub/b")
        );
        // A modified file is listed under its directory, not a reference.
        assert_eq!((l[6].1.dir_id, l[6].1.is_reference), (2, false));
    }

    #[test]
    fn a_reversed_report_lists_from_the_earlier_state() {
        // The report for `s2 → s1` (the later first): what was created
        // shows as deleted, a rename runs backwards.
        let r = report(
            false,
            vec![
                e(DiffType::Modify, "", None, 1, true),
                e(DiffType::Delete, "new", None, 5, false),
                e(DiffType::Rename, "b", Some("a"), 7, false),
            ],
        );
        let l = r.listing();
        assert_eq!(l[1].0, ListKind::Created);
        assert_eq!(l[1].1.path, "new");
        assert_eq!(l[2].0, ListKind::Deleted);
        assert_eq!(
            (l[2].1.path.as_str(), l[2].1.target.as_deref()),
            ("a", Some("b"))
        );
        assert!(!r.listing_page(-1, 10).is_from_earlier);
    }

    #[test]
    fn pages_cover_every_entry_once_and_end_with_the_empty_cursor() {
        let entries = (0..25)
            .map(|i| e(DiffType::Create, &format!("f{i:02}"), None, 10 + i, false))
            .collect();
        let r = report(true, entries);
        let (mut index, mut seen, mut pages) = (-1, Vec::new(), 0);
        loop {
            let p = r.listing_page(index, 10);
            pages += 1;
            seen.extend(p.created.iter().map(|c| c.file_id));
            if p.last_path.is_empty() && p.last_index == -1 {
                break;
            }
            assert!(p.last_index > index);
            index = p.last_index;
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, (10..35).collect::<Vec<_>>());
        // A cursor past the end (a stale or hostile one) is an empty last page.
        let p = r.listing_page(1_000_000, 10);
        assert!(p.created.is_empty() && p.last_index == -1);
    }
}
