//! A fake metadata node: records what a datanode reports and hands it the
//! commands a test queues through its long poll (as the leader of term 1).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tdfs_proto::meta::{DatanodeCommand, DatanodeRequest, DatanodeResponse, Request, Response};
use tdfs_proto::FsError;
use tdfs_rpc::{serve, Handler, Peer, ServerConfig, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

#[derive(Default)]
struct State {
    /// Every request but polls, in order.
    seen: Mutex<Vec<DatanodeRequest>>,
    /// Handed out with the next reply.
    commands: Mutex<Vec<DatanodeCommand>>,
    /// Woken on every recorded request.
    changed: Notify,
    /// Woken when a command is queued (for the long poll).
    queued: Notify,
}

struct MetaHandler(Arc<State>);

impl Handler<Request, Response> for MetaHandler {
    async fn handle(&self, _peer: &Peer, req: Request) -> Result<Response, FsError> {
        let Request::Datanode(r) = req else {
            return Err(FsError::Unsupported("fake metadata node".into()));
        };
        if let DatanodeRequest::Poll { wait_ms, .. } = r {
            // A long poll: answered as soon as commands are queued.
            let deadline =
                tokio::time::Instant::now() + Duration::from_millis(u64::from(wait_ms).min(200));
            loop {
                let queued = self.0.queued.notified();
                tokio::pin!(queued);
                queued.as_mut().enable();
                let commands = std::mem::take(&mut *self.0.commands.lock().unwrap());
                if !commands.is_empty() {
                    return Ok(Response::Datanode(DatanodeResponse::Commands {
                        term: 1,
                        commands,
                    }));
                }
                if tokio::time::timeout_at(deadline, queued).await.is_err() {
                    return Ok(Response::Datanode(DatanodeResponse::Ok));
                }
            }
        }
        self.0.seen.lock().unwrap().push(r);
        self.0.changed.notify_waiters();
        Ok(Response::Datanode(DatanodeResponse::Ok))
    }
}

/// A metadata node that answers every datanode request with `Ok`.
pub struct FakeMeta {
    /// Where it listens.
    pub addr: String,
    state: Arc<State>,
    _stop: watch::Sender<bool>,
}

impl FakeMeta {
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::default()).await
    }

    /// [`FakeMeta::start`] with its server's limits (e.g. a small frame).
    pub async fn start_with(config: ServerConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(State::default());
        let (stop, shutdown) = Shutdown::new();
        tokio::spawn(serve::<Request, Response, _>(
            listener,
            Arc::new(MetaHandler(state.clone())),
            config,
            shutdown,
        ));
        FakeMeta {
            addr,
            state,
            _stop: stop,
        }
    }

    /// Queues a command for the datanode's long poll.
    pub fn push(&self, c: DatanodeCommand) {
        self.state.commands.lock().unwrap().push(c);
        self.state.queued.notify_waiters();
    }

    /// Every request recorded so far, in order.
    pub fn seen(&self) -> Vec<DatanodeRequest> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Waits (20 s at most) until some request recorded so far gives `f` a value.
    pub async fn wait<T>(&self, what: &str, f: impl Fn(&DatanodeRequest) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.state.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(t) = self.state.seen.lock().unwrap().iter().find_map(&f) {
                return t;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("timed out waiting for {what}");
            }
        }
    }
}
