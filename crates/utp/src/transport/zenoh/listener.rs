//! [`ZenohListener`]: a server of a zenoh:// key.

use super::channel::ZenohChannel;
use super::link::{Link, Role};
use super::{keys, session, zenoh_error};
use crate::channel::{Channel, Listener, Options};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::wake::Doorbell;
use crossbeam_channel::{Receiver, RecvTimeoutError, bounded};
use std::sync::Arc;
use std::time::Duration;
use zenoh::liveliness::LivelinessToken;
use zenoh::query::{Query, Queryable};
use zenoh::{Session, Wait};

/// Connect queries that may wait for `accept`; beyond, clients are refused
/// at once ("server busy") instead of queueing.
const BACKLOG: usize = 128;

/// Serves one zenoh key; see the [module docs](super).
pub struct ZenohListener {
    session: Session,
    service: String,
    endpoint: Endpoint,
    options: Options,
    server_id: String,
    pending: Receiver<Query>,
    queryable: Option<Queryable<()>>,
    token: Option<LivelinessToken>,
    /// Rung by the queryable's callback once `try_accept` armed it.
    bell: Option<Arc<Doorbell>>,
}

impl std::fmt::Debug for ZenohListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZenohListener")
            .field("endpoint", &self.endpoint.to_string())
            .field("server_id", &self.server_id)
            .finish_non_exhaustive()
    }
}

impl ZenohListener {
    /// Declares the server's connect queryable and liveliness token.
    pub(super) fn bind(endpoint: &Endpoint, service: &str, options: &Options) -> Result<Self> {
        let session = session::for_endpoint(endpoint, options)?;
        let server_id = session::unique_id(&session, 's');
        let (queue, pending) = bounded::<Query>(BACKLOG);
        let bell = Doorbell::new().ok().map(Arc::new);
        let ring = bell.clone();
        let queryable = session
            .declare_queryable(keys::connect(service, &server_id))
            .callback(move |query| match queue.try_send(query) {
                Ok(()) => {
                    if let Some(bell) = &ring {
                        bell.ring();
                    }
                }
                Err(e) => {
                    let query = e.into_inner();
                    let _ = query
                        .reply_err(
                            "server busy: too many clients waiting to be accepted"
                                .as_bytes()
                                .to_vec(),
                        )
                        .wait();
                }
            })
            .wait()
            .map_err(|e| zenoh_error("declare the zenoh connect queryable", e))?;
        let token = session
            .liveliness()
            .declare_token(keys::server(service, &server_id))
            .wait()
            .map_err(|e| zenoh_error("declare the zenoh server token", e))?;
        log::info!("{endpoint}: zenoh server {server_id}");
        Ok(ZenohListener {
            session,
            service: service.to_string(),
            endpoint: endpoint.clone(),
            options: options.clone(),
            server_id,
            pending,
            queryable: Some(queryable),
            token: Some(token),
            bell,
        })
    }

    /// Opens the server's end of the link a connect query asks for.
    fn answer(&self, query: Query) -> Result<Option<ZenohChannel>> {
        let link_id = query
            .payload()
            .map(|p| p.to_bytes().into_owned())
            .unwrap_or_default();
        let Some(link_id) = std::str::from_utf8(&link_id)
            .ok()
            .filter(|id| keys::valid_id(id))
        else {
            let _ = query
                .reply_err(b"invalid link id in the connect query".to_vec())
                .wait();
            return Ok(None);
        };
        let ready = super::channel::Ready::new();
        let link = Link::open(
            &self.session,
            &self.service,
            link_id,
            Role::Server,
            self.options.connect_timeout,
            self.options.max_payload,
            ready.as_ref().map(|r| r.bell.clone()),
        )?;
        query
            .reply(query.key_expr().clone(), self.server_id.as_bytes().to_vec())
            .wait()
            .map_err(|e| zenoh_error("answer a zenoh connect query", e))?;
        Ok(Some(ZenohChannel::accepted(
            self.session.clone(),
            &self.service,
            &self.endpoint,
            &self.options,
            link,
            ready,
        )))
    }
}

impl Listener for ZenohListener {
    fn accept_timeout(&mut self, timeout: Option<Duration>) -> Result<Box<dyn Channel>> {
        if self.queryable.is_none() {
            return Err(Error::Closed);
        }
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let query = match deadline {
                None => self.pending.recv().map_err(|_| Error::Closed)?,
                Some(at) => match self.pending.recv_deadline(at) {
                    Ok(query) => query,
                    Err(RecvTimeoutError::Timeout) => {
                        return Err(Error::Timeout {
                            waiting_for: "a zenoh client",
                            after: timeout.unwrap_or_default(),
                        });
                    }
                    Err(RecvTimeoutError::Disconnected) => return Err(Error::Closed),
                },
            };
            if let Some(channel) = self.answer(query)? {
                return Ok(Box::new(channel));
            }
        }
    }

    fn try_accept(&mut self) -> Result<Option<Box<dyn Channel>>> {
        if self.queryable.is_none() {
            return Err(Error::Closed);
        }
        for armed in [false, true] {
            while let Ok(query) = self.pending.try_recv() {
                if let Some(channel) = self.answer(query)? {
                    return Ok(Some(Box::new(channel)));
                }
            }
            // Armed, then one more look: a query queued in between either
            // shows now or rings the doorbell.
            // Only for a caller that waits on the descriptor: a listener
            // polled with `try_accept` alone is never rung.
            match &self.bell {
                Some(bell) if !armed && bell.handed_out() => bell.arm(),
                _ => break,
            }
        }
        Ok(None)
    }

    fn readiness(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.bell.as_ref().map(|bell| bell.hand_out())
    }

    fn endpoint(&self) -> String {
        self.endpoint.to_string()
    }

    fn close(&mut self) -> Result<()> {
        if let Some(token) = self.token.take() {
            let _ = token.undeclare().wait();
        }
        if let Some(queryable) = self.queryable.take() {
            let _ = queryable.undeclare().wait();
        }
        for query in self.pending.try_iter() {
            let _ = query.reply_err(b"server closing".to_vec()).wait();
        }
        Ok(())
    }
}

impl Drop for ZenohListener {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
