//! A linearizability checker in the style of Porcupine (Wing & Gong with
//! Lowe's memoization): per key, search for a total order of the operations
//! that respects real time (an operation that returned before another was
//! invoked comes first) and that the sequential model accepts. Operations
//! with an unknown result never return: they may be placed anywhere after
//! their invocation, and the model lets them either take effect or not.

use super::history::{is_pair, NsOp, Op, Ret};
use std::collections::{BTreeMap, HashSet};

/// What a path is in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Absent,
    File,
    Dir,
}

/// The state of one key: its one or two paths.
type State = [Node; 2];

/// The states `op` with result `res` may lead to from `s` (empty: impossible).
pub fn step(s: State, op: NsOp, res: Ret) -> Vec<State> {
    let set = |s: State, i: u8, n: Node| {
        let mut t = s;
        t[i as usize] = n;
        t
    };
    let unknown = res == Ret::Unknown;
    let mut out = Vec::new();
    match op {
        NsOp::Create(p) | NsOp::Mkdir(p) => {
            let made = if matches!(op, NsOp::Create(_)) {
                Node::File
            } else {
                Node::Dir
            };
            let absent = s[p as usize] == Node::Absent;
            if (res == Ret::Ok || unknown) && absent {
                out.push(set(s, p, made));
            }
            if (res == Ret::Exists && !absent) || unknown {
                out.push(s);
            }
        }
        NsOp::Delete(p) => {
            let absent = s[p as usize] == Node::Absent;
            if (res == Ret::Ok || unknown) && !absent {
                out.push(set(s, p, Node::Absent));
            }
            if (res == Ret::NotFound && absent) || unknown {
                out.push(s);
            }
        }
        NsOp::Stat(p) => {
            let ok = match res {
                Ret::IsFile => s[p as usize] == Node::File,
                Ret::IsDir => s[p as usize] == Node::Dir,
                Ret::NotFound => s[p as usize] == Node::Absent,
                _ => unknown,
            };
            if ok {
                out.push(s);
            }
        }
        NsOp::Rename { from, to } => {
            let (src, dst) = (s[from as usize], s[to as usize]);
            if (res == Ret::Ok || unknown) && src != Node::Absent && dst == Node::Absent {
                out.push(set(set(s, from, Node::Absent), to, src));
            }
            let failed_ok = match res {
                Ret::NotFound => src == Node::Absent,
                Ret::Exists => src != Node::Absent && dst != Node::Absent,
                Ret::Unknown => true,
                _ => false,
            };
            if failed_ok {
                out.push(s);
            }
        }
    }
    out
}

/// Outcome of checking one history.
#[derive(Debug, Default)]
pub struct Verdict {
    pub keys: usize,
    pub ops: usize,
    pub unknown: usize,
    /// Keys whose search ran out of budget (neither proved nor refuted).
    pub inconclusive: Vec<usize>,
    /// One explanation per non-linearizable key.
    pub violations: Vec<String>,
}

/// Search steps allowed per key before giving up as inconclusive.
const BUDGET: usize = 20_000_000;

/// Checks every key's sub-history.
pub fn check(ops: &[Op]) -> Verdict {
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
        match check_key(&kops) {
            Ok(()) => {}
            Err(None) => v.inconclusive.push(key),
            Err(Some(stuck)) => v.violations.push(explain(key, &kops, stuck)),
        }
    }
    v
}

fn bit(d: &[u64], i: usize) -> bool {
    d[i / 64] >> (i % 64) & 1 == 1
}

/// The (op, next state) pairs that may come next after `done` in state `s`.
fn candidates(ops: &[Op], done: &[u64], s: State) -> Vec<(usize, State)> {
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
            out.extend(step(s, o.op, o.res).into_iter().map(|t| (i, t)));
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
fn check_key(ops: &[Op]) -> Result<(), Option<usize>> {
    let n = ops.len();
    if n == 0 {
        return Ok(());
    }
    let init = [Node::Absent; 2];
    let zero = vec![0u64; n.div_ceil(64)];
    let mut seen: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack = vec![Frame {
        cands: candidates(ops, &zero, init),
        done: zero,
        ndone: 0,
        next: 0,
    }];
    let mut deepest = 0;
    let mut steps = 0usize;
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
        steps += 1;
        if steps > BUDGET {
            return Err(None);
        }
        stack.push(Frame {
            cands: candidates(ops, &done, s),
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
        if is_pair(key) { "pair" } else { "single" },
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
            op(NsOp::Stat(0), Ret::IsFile, 11, 20),
            op(NsOp::Delete(0), Ret::Ok, 21, 30),
            op(NsOp::Stat(0), Ret::NotFound, 31, 40),
        ];
        assert!(check_key(&ok).is_ok());
        let stale = vec![
            op(NsOp::Create(0), Ret::Ok, 0, 10),
            op(NsOp::Delete(0), Ret::Ok, 21, 30),
            op(NsOp::Stat(0), Ret::IsFile, 31, 40),
        ];
        assert_eq!(check_key(&stale), Err(Some(2)));
    }

    #[test]
    fn concurrent_and_unknown_operations_may_go_either_way() {
        let h = vec![
            op(NsOp::Create(0), Ret::Unknown, 0, u64::MAX),
            op(NsOp::Stat(0), Ret::NotFound, 5, 6),
            op(NsOp::Stat(0), Ret::IsFile, 7, 8),
            op(NsOp::Rename { from: 0, to: 1 }, Ret::Ok, 9, 12),
            op(NsOp::Stat(1), Ret::IsFile, 10, 11),
        ];
        assert!(check_key(&h).is_ok());
        // A failed create proves the path existed at some point in its span.
        let h = vec![op(NsOp::Create(0), Ret::Exists, 0, 5)];
        assert_eq!(check_key(&h), Err(Some(0)));
    }
}
