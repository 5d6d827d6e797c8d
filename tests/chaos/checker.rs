//! A linearizability checker in the style of Porcupine (Wing & Gong with
//! Lowe's memoization): per key, search for a total order of the operations
//! that respects real time (an operation that returned before another was
//! invoked comes first) and that the sequential model accepts. Operations
//! with an unknown result never return: they may be placed anywhere after
//! their invocation, and the model lets them either take effect or not.

use super::history::{is_pair, is_tree, NsOp, Op, Ret};
use std::collections::{BTreeMap, HashSet};

/// What a path is in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Absent,
    /// A file of this length.
    File(u64),
    Dir,
}

/// Slots per key in the model (a tree key's eight; others use one or two).
pub const SLOTS: usize = 8;

/// The state of one key: its paths by slot (unused slots stay absent).
pub type State = [Node; SLOTS];

/// The shape of a key: which slot is the parent of which.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Single and pair keys: every slot a child of the always-present
    /// `/chaos/ns`.
    Flat,
    /// A tree key (`history::TREE_SLOTS`): `d0`, `d1`, `f0`, `f1` in the
    /// root, `d<i>/f<j>` = slot `4 + 2i + j` inside directory `d<i>`.
    Tree,
}

impl Shape {
    pub fn of(key: usize) -> Shape {
        if is_tree(key) {
            Shape::Tree
        } else {
            Shape::Flat
        }
    }

    /// The slot of the parent directory, if it is not the key's root.
    fn parent(self, slot: usize) -> Option<usize> {
        match self {
            Shape::Tree if slot >= 4 => Some((slot - 4) / 2),
            _ => None,
        }
    }

    /// The slots inside directory slot `dir`.
    fn children(self, dir: usize) -> &'static [usize] {
        match (self, dir) {
            (Shape::Tree, 0) => &[4, 5],
            (Shape::Tree, 1) => &[6, 7],
            _ => &[],
        }
    }

    /// The slot `dir/<name of slot file>`, if the model has one.
    fn child(self, dir: usize, file: usize) -> Option<usize> {
        match (self, dir, file) {
            (Shape::Tree, 0 | 1, 2 | 3) => Some(4 + 2 * dir + (file - 2)),
            _ => None,
        }
    }
}

/// Whether the parent of `slot` is a directory (the root always is).
fn parent_ok(shape: Shape, s: &State, slot: usize) -> bool {
    shape.parent(slot).is_none_or(|p| s[p] == Node::Dir)
}

/// The states `op` with result `res` may lead to from `s` (empty: impossible).
pub fn step(shape: Shape, s: State, op: NsOp, res: Ret) -> Vec<State> {
    let unknown = res == Ret::Unknown;
    // `applied`: the state after the operation took effect, if it can.
    // `failed`: whether a failure result (or no effect) fits the state.
    let (applied, failed) = match op {
        NsOp::Create(p) => make(shape, s, p as usize, Node::File(0), res),
        NsOp::Mkdir(p) => make(shape, s, p as usize, Node::Dir, res),
        NsOp::Delete(p) => delete(shape, s, p as usize, false, res),
        NsOp::DeleteAll(p) => delete(shape, s, p as usize, true, res),
        NsOp::Stat(p) => {
            let ok = match res {
                Ret::IsFile(len) => s[p as usize] == Node::File(len),
                Ret::IsDir => s[p as usize] == Node::Dir,
                Ret::NotFound => s[p as usize] == Node::Absent,
                _ => false,
            };
            (None, ok)
        }
        NsOp::Rename { from, to } => rename(shape, s, from as usize, to as usize, res),
        NsOp::Append(p, n) => {
            let p = p as usize;
            let applied = match s[p] {
                Node::File(len) => {
                    let mut t = s;
                    t[p] = Node::File(len + n as u64);
                    Some(t)
                }
                _ => None,
            };
            (applied, res == Ret::NotFound && s[p] == Node::Absent)
        }
    };
    let mut out = Vec::new();
    if let Some(t) = applied {
        if res == Ret::Ok || unknown {
            out.push(t);
        }
    }
    // An operation of unknown outcome may also have had no effect.
    if failed || unknown {
        out.push(s);
    }
    out
}

/// Create or mkdir of slot `p` (the parent must be a directory).
fn make(shape: Shape, s: State, p: usize, made: Node, res: Ret) -> (Option<State>, bool) {
    let (present, parent) = (s[p] != Node::Absent, parent_ok(shape, &s, p));
    let mut t = s;
    t[p] = made;
    let failed = match res {
        Ret::Exists => parent && present,
        Ret::NotFound => !parent,
        _ => false,
    };
    ((parent && !present).then_some(t), failed)
}

/// Delete of slot `p`: a directory with children only if `recursive`.
fn delete(shape: Shape, s: State, p: usize, recursive: bool, res: Ret) -> (Option<State>, bool) {
    let kids = shape.children(p);
    let empty = kids.iter().all(|&c| s[c] == Node::Absent);
    let may = s[p] != Node::Absent && (empty || recursive);
    let mut t = s;
    t[p] = Node::Absent;
    for &c in kids {
        t[c] = Node::Absent;
    }
    (
        may.then_some(t),
        res == Ret::NotFound && s[p] == Node::Absent,
    )
}

/// Rename of `from` to `to`, into `to` when it is a directory.
fn rename(shape: Shape, s: State, from: usize, to: usize, res: Ret) -> (Option<State>, bool) {
    let src = s[from];
    // Into a directory under the file's own name, else to `to`.
    let target = if s[to] == Node::Dir {
        shape.child(to, from)
    } else {
        Some(to)
    };
    let applied = target
        .filter(|&d| src != Node::Absent && s[d] == Node::Absent)
        .map(|d| {
            let mut t = s;
            t[from] = Node::Absent;
            t[d] = src;
            t
        });
    let failed = match res {
        Ret::NotFound => src == Node::Absent,
        Ret::Exists => src != Node::Absent && target.is_some_and(|d| s[d] != Node::Absent),
        _ => false,
    };
    (applied, failed)
}

/// Outcome of checking one history.
#[derive(Debug, Default)]
pub struct Verdict {
    pub keys: usize,
    pub ops: usize,
    pub unknown: usize,
    /// Keys whose search ran out of budget (neither proved nor refuted):
    /// a failed run.
    pub inconclusive: Vec<usize>,
    /// The most search steps any key took (compare with [`BUDGET`]).
    pub max_steps: usize,
    /// One explanation per non-linearizable key.
    pub violations: Vec<String>,
}

/// Search steps allowed per key before giving up as inconclusive.
pub const BUDGET: usize = 20_000_000;

/// Checks every key's sub-history.
pub fn check(ops: &[Op]) -> Verdict {
    check_with_budget(ops, BUDGET)
}

/// [`check`] with `budget` search steps per key.
pub fn check_with_budget(ops: &[Op], budget: usize) -> Verdict {
    let mut by_key: BTreeMap<usize, Vec<Op>> = BTreeMap::new();
    for o in ops {
        by_key.entry(o.key).or_default().push(o.clone());
    }
    let mut v = Verdict {
        keys: by_key.len(),
        ops: ops.len(),
        unknown: ops.iter().filter(|o| o.res == Ret::Unknown).count(),
        ..Verdict::default()
    };
    for (key, mut kops) in by_key {
        kops.sort_by_key(|o| (o.invoke, o.ret));
        let mut steps = 0;
        match check_key_counting(Shape::of(key), &kops, budget, &mut steps) {
            Ok(()) => {}
            Err(None) => {
                v.inconclusive.push(key);
                v.violations.push(format!(
                    "key {key}: the linearizability search ran out of its budget ({budget} \
                     steps) on {} operations: neither proved nor refuted",
                    kops.len()
                ));
            }
            Err(Some(stuck)) => v.violations.push(explain(key, &kops, stuck)),
        }
        v.max_steps = v.max_steps.max(steps);
    }
    v
}

fn bit(d: &[u64], i: usize) -> bool {
    d[i / 64] >> (i % 64) & 1 == 1
}

/// The (op, next state) pairs that may come next after `done` in state `s`.
fn candidates(shape: Shape, ops: &[Op], done: &[u64], s: State) -> Vec<(usize, State)> {
    let min_ret = (0..ops.len())
        .filter(|&i| !bit(done, i))
        .map(|i| ops[i].ret)
        .min()
        .unwrap_or(u64::MAX);
    let mut out = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        // Sorted by invocation: nothing later can precede the earliest return.
        if o.invoke > min_ret {
            break;
        }
        if !bit(done, i) {
            out.extend(step(shape, s, o.op, o.res).into_iter().map(|t| (i, t)));
        }
    }
    out
}

struct Frame {
    done: Vec<u64>,
    ndone: usize,
    cands: Vec<(usize, State)>,
    next: usize,
}

/// `Ok` if linearizable; `Err(Some(n))` if not, where `n` is the length of
/// the longest linearizable prefix found; `Err(None)` if out of budget.
#[cfg(test)]
fn check_key(ops: &[Op]) -> Result<(), Option<usize>> {
    check_key_counting(Shape::Flat, ops, BUDGET, &mut 0)
}

/// [`check_key`], leaving the number of search steps taken in `steps`.
fn check_key_counting(
    shape: Shape,
    ops: &[Op],
    budget: usize,
    steps: &mut usize,
) -> Result<(), Option<usize>> {
    let n = ops.len();
    if n == 0 {
        return Ok(());
    }
    let init = [Node::Absent; SLOTS];
    let zero = vec![0u64; n.div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack = vec![Frame {
        cands: candidates(shape, ops, &zero, init),
        done: zero,
        ndone: 0,
        next: 0,
    }];
    let mut deepest = 0;
    while let Some(top) = stack.last_mut() {
        if top.next == top.cands.len() {
            stack.pop();
            continue;
        }
        let (i, s) = top.cands[top.next];
        top.next += 1;
        let mut done = top.done.clone();
        done[i / 64] |= 1 << (i % 64);
        let ndone = top.ndone + 1;
        if ndone == n {
            return Ok(());
        }
        deepest = deepest.max(ndone);
        if !seen.insert((done.clone(), s)) {
            continue;
        }
        *steps += 1;
        if *steps > budget {
            return Err(None);
        }
        stack.push(Frame {
            cands: candidates(shape, ops, &done, s),
            done,
            ndone,
            next: 0,
        });
    }
    Err(Some(deepest))
}

/// A readable account of a non-linearizable key: the operations around the
/// point where every order got stuck.
fn explain(key: usize, ops: &[Op], stuck: usize) -> String {
    let from = stuck.saturating_sub(8);
    let to = (stuck + 8).min(ops.len());
    let mut s = format!(
        "key {key} ({}) is not linearizable: no order of its {} operations fits the model; \
         at most {stuck} could be ordered. Operations {from}..{to} (µs since start):\n",
        if is_tree(key) {
            "tree"
        } else if is_pair(key) {
            "pair"
        } else {
            "single"
        },
        ops.len()
    );
    for (i, o) in ops.iter().enumerate().take(to).skip(from) {
        let ret = if o.ret == u64::MAX {
            "?".to_string()
        } else {
            o.ret.to_string()
        };
        s += &format!(
            "  #{i} worker {} {:?} -> {:?} [{} .. {}]\n",
            o.worker, o.op, o.res, o.invoke, ret
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: NsOp, res: Ret, invoke: u64, ret: u64) -> Op {
        Op {
            key: 0,
            op,
            invoke,
            ret,
            res,
            worker: 0,
        }
    }

    #[test]
    fn sequential_history_passes_and_stale_read_fails() {
        let ok = vec![
            op(NsOp::Create(0), Ret::Ok, 0, 10),
            op(NsOp::Stat(0), Ret::IsFile(0), 11, 20),
            op(NsOp::Delete(0), Ret::Ok, 21, 30),
            op(NsOp::Stat(0), Ret::NotFound, 31, 40),
        ];
        assert!(check_key(&ok).is_ok());
        let stale = vec![
            op(NsOp::Create(0), Ret::Ok, 0, 10),
            op(NsOp::Delete(0), Ret::Ok, 21, 30),
            op(NsOp::Stat(0), Ret::IsFile(0), 31, 40),
        ];
        assert_eq!(check_key(&stale), Err(Some(2)));
    }

    #[test]
    fn concurrent_and_unknown_operations_may_go_either_way() {
        let h = vec![
            op(NsOp::Create(0), Ret::Unknown, 0, u64::MAX),
            op(NsOp::Stat(0), Ret::NotFound, 5, 6),
            op(NsOp::Stat(0), Ret::IsFile(0), 7, 8),
            op(NsOp::Rename { from: 0, to: 1 }, Ret::Ok, 9, 12),
            op(NsOp::Stat(1), Ret::IsFile(0), 10, 11),
        ];
        assert!(check_key(&h).is_ok());
        // A failed create proves the path existed at some point in its span.
        let h = vec![op(NsOp::Create(0), Ret::Exists, 0, 5)];
        assert_eq!(check_key(&h), Err(Some(0)));
    }

    fn tree(ops: &[Op]) -> Result<(), Option<usize>> {
        check_key_counting(Shape::Tree, ops, BUDGET, &mut 0)
    }

    /// `ops` one after another (each returns before the next is invoked).
    fn seq(ops: &[(NsOp, Ret)]) -> Vec<Op> {
        ops.iter()
            .enumerate()
            .map(|(i, &(o, r))| op(o, r, 10 * i as u64, 10 * i as u64 + 5))
            .collect()
    }

    use NsOp::{Append, Create, Delete, DeleteAll, Mkdir, Rename, Stat};
    use Ret::{Exists, IsDir, IsFile, NotFound, Ok as Done, Unknown};

    #[test]
    fn tree_histories_that_follow_the_namespace_pass() {
        // Slots: 0 d0, 1 d1, 2 f0, 3 f1, 4 d0/f0, 5 d0/f1, 6 d1/f0, 7 d1/f1.
        let h = seq(&[
            (Create(4), NotFound), // no d0 yet
            (Mkdir(0), Done),
            (Create(2), Done),
            (Rename { from: 2, to: 0 }, Done), // into d0: d0/f0
            (Stat(2), NotFound),
            (Stat(4), IsFile(0)),
            (Append(4, 5), Done),
            (Append(3, 7), NotFound),
            (Stat(4), IsFile(5)),
            (Rename { from: 4, to: 2 }, Done), // back out
            (Stat(2), IsFile(5)),
            (Create(5), Done),
            (Delete(5), Done),
            (Create(5), Done),
            (DeleteAll(0), Done),
            (Stat(5), NotFound),
            (Stat(0), NotFound),
            (Rename { from: 2, to: 1 }, Done), // d1 absent: f0 becomes d1
            (Stat(1), IsFile(5)),
            (Mkdir(1), Exists),
            (Create(6), NotFound), // d1 is a file
        ]);
        assert_eq!(tree(&h), Ok(()));
        // An append of unknown outcome: applied or not, once.
        let mut h = seq(&[(Create(2), Done), (Stat(2), IsFile(0))]);
        h.push(op(Append(2, 3), Unknown, 20, u64::MAX));
        h.push(op(Stat(2), IsFile(0), 30, 35));
        h.push(op(Stat(2), IsFile(3), 40, 45));
        assert_eq!(tree(&h), Ok(()));
        // A directory made concurrently with a move into it.
        let h = vec![
            op(Create(3), Done, 0, 5),
            op(Mkdir(1), Done, 10, 30),
            op(Rename { from: 3, to: 1 }, Done, 12, 28),
            op(Stat(7), IsFile(0), 40, 45),
        ];
        assert_eq!(tree(&h), Ok(()));
    }

    #[test]
    fn tree_histories_each_new_operation_breaks_are_rejected() {
        let reject = |what: &str, h: Vec<Op>| {
            assert!(matches!(tree(&h), Err(Some(_))), "{what} was accepted");
        };
        // A rename into a directory that left the source in place.
        reject(
            "a source still there after a move into a directory",
            seq(&[
                (Mkdir(0), Done),
                (Create(2), Done),
                (Rename { from: 2, to: 0 }, Done),
                (Stat(2), IsFile(0)),
            ]),
        );
        // ... or that did not put the file inside the directory.
        reject(
            "a moved file missing from its directory",
            seq(&[
                (Mkdir(0), Done),
                (Create(2), Done),
                (Rename { from: 2, to: 0 }, Done),
                (Stat(4), NotFound),
            ]),
        );
        // A recursive delete that left a child behind.
        reject(
            "a child surviving a recursive delete",
            seq(&[
                (Mkdir(1), Done),
                (Create(6), Done),
                (DeleteAll(1), Done),
                (Stat(6), IsFile(0)),
            ]),
        );
        // A non-recursive delete of a directory that is not empty.
        reject(
            "a non-empty directory deleted without recursion",
            seq(&[(Mkdir(1), Done), (Create(7), Done), (Delete(1), Done)]),
        );
        // An acknowledged append lost, or applied twice.
        let appended = |len| {
            seq(&[
                (Create(3), Done),
                (Append(3, 3), Done),
                (Stat(3), IsFile(len)),
            ])
        };
        reject("a lost append", appended(0));
        reject("an append applied twice", appended(6));
        // An append of unknown outcome cannot be undone once seen.
        let mut h = seq(&[(Create(2), Done)]);
        h.push(op(Append(2, 3), Unknown, 10, u64::MAX));
        h.push(op(Stat(2), IsFile(3), 20, 25));
        h.push(op(Stat(2), IsFile(0), 30, 35));
        reject("an unknown append seen and then undone", h);
        // A create inside a directory that does not exist.
        reject(
            "a file created in a missing directory",
            seq(&[(Create(5), Done)]),
        );
        // A stat of a directory's kind that a file took.
        reject(
            "a directory where a file was renamed",
            seq(&[
                (Create(2), Done),
                (Rename { from: 2, to: 0 }, Done),
                (Stat(0), IsDir),
            ]),
        );
    }

    #[test]
    fn a_search_out_of_budget_fails_the_check() {
        let h: Vec<Op> = (0..20)
            .map(|i| Op {
                key: 0,
                op: Stat(0),
                invoke: 0,
                ret: 100,
                res: NotFound,
                worker: i,
            })
            .collect();
        let v = check_with_budget(&h, 5);
        assert_eq!(v.inconclusive, vec![0]);
        assert!(v.violations[0].contains("ran out of its budget"), "{v:?}");
        assert!(check(&h).violations.is_empty());
    }
}
