//! List, then watch, over protobuf: the steps and events of kube-runtime's `watcher` (list in
//! pages, watch from the list's resourceVersion with bookmarks, watch again from the last
//! resourceVersion when a watch ends, list again after 410 Gone), for the views of
//! [`super::proto`].
//!
//! Why not kube-runtime's own: its watcher reads JSON only (the API mode that would let it ask
//! for protobuf is private in kube 5). Its events and errors are kept (`watcher::Event`,
//! `watcher::Error`), so `watch::run`, the tracker and kube-runtime's backoff take this
//! stream as they take the JSON one.
//!
//! One difference: an object that cannot be decoded ends the watch and lists again (the error
//! is reported), where kube-runtime's watcher reports it and goes on without it; a list then
//! diffs what the skipped event would have told.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::header::{ACCEPT, HeaderValue};
use http_body_util::BodyExt;
use kube::Resource;
use kube::api::{ListParams, WatchParams};
use kube::core::{Request, Status};
use kube::runtime::watcher::{self, Event};

use super::proto::{self, ListMeta, MEDIA_TYPE, ProtoError, Protobuf};

/// A frame larger than this is an error (an object is at most ~1.5 MiB in etcd).
const MAX_FRAME: usize = 64 << 20;
/// How long a watch asks the server to stay open.
const WATCH_TIMEOUT_SECS: u32 = 290;
/// A watch silent this long past its timeout is taken as dead (a lost connection whose close
/// never came), as kube-runtime's watcher does.
const IDLE_MARGIN: Duration = Duration::from_secs(5);

/// The list and watch requests of one kind, in one namespace or all, answered in protobuf.
pub struct ProtoApi<K> {
    client: kube::Client,
    request: Request,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for ProtoApi<K> {
    fn clone(&self) -> Self {
        ProtoApi {
            client: self.client.clone(),
            request: Request::new(self.request.url_path.clone()),
            kind: PhantomData,
        }
    }
}

/// One event of a watch.
#[derive(Debug)]
enum Change<K> {
    Apply(K),
    Delete(K),
    Bookmark(String),
    Error(Box<Status>),
}

impl<K> ProtoApi<K>
where
    K: Resource<DynamicType = ()> + Protobuf + Send + 'static,
{
    /// Every namespace.
    pub fn all(client: kube::Client) -> Self {
        ProtoApi { client, request: Request::new(K::url_path(&(), None)), kind: PhantomData }
    }

    /// One namespace.
    pub fn namespaced(client: kube::Client, namespace: &str) -> Self {
        ProtoApi { client, request: Request::new(K::url_path(&(), Some(namespace))), kind: PhantomData }
    }

    /// One page of the list `lp` asks for, and the list's metadata.
    pub async fn list(&self, lp: &ListParams) -> Result<(Vec<K>, ListMeta), kube::Error> {
        let req = self.request.list(lp).map_err(kube::Error::BuildRequest)?;
        let body = send(&self.client, req).await?.into_body().collect_bytes().await?;
        let decoded = proto::unwrap(body).and_then(K::decode_list);
        decoded.map_err(read_error)
    }

    /// The events of a watch from `rv`.
    async fn watch(
        &self,
        wp: &WatchParams,
        rv: &str,
    ) -> Result<BoxStream<'static, Result<Change<K>, kube::Error>>, kube::Error> {
        let req = self.request.watch(wp, rv).map_err(kube::Error::BuildRequest)?;
        let body = send(&self.client, req).await?.into_body();
        let changes =
            frames(body.into_data_stream().boxed()).map(|frame| frame.and_then(|f| change(f).map_err(read_error)));
        Ok(changes.boxed())
    }
}

fn read_error(e: ProtoError) -> kube::Error {
    kube::Error::ReadEvents(std::io::Error::other(e))
}

/// Sends `req` asking for protobuf; an answer other than 2xx becomes `kube::Error::Api` with the
/// server's Status (code, reason, message) when it sent one.
async fn send(
    client: &kube::Client,
    req: http::Request<Vec<u8>>,
) -> Result<http::Response<kube::client::Body>, kube::Error> {
    let (mut parts, body) = req.into_parts();
    parts.headers.insert(ACCEPT, HeaderValue::from_static(MEDIA_TYPE));
    let res = client.send(http::Request::from_parts(parts, kube::client::Body::from(body))).await?;
    let code = res.status();
    if code.is_success() {
        return Ok(res);
    }
    let bytes = res.into_body().collect_bytes().await?;
    Err(kube::Error::Api(api_status(code.as_u16(), bytes).boxed()))
}

/// The Status an error answer holds, else its text (a proxy's page) with the HTTP code.
fn api_status(http_code: u16, bytes: Bytes) -> Status {
    match proto::unwrap(bytes.clone()).and_then(|raw| proto::decode::<proto::Status>(raw, "Status")) {
        Ok(s) => status_of(s, http_code),
        Err(_) => Status::failure(String::from_utf8_lossy(&bytes).trim(), "").with_code(http_code),
    }
}

fn status_of(s: proto::Status, http_code: u16) -> Status {
    let code = s.code.and_then(|c| u16::try_from(c).ok()).filter(|c| *c != 0).unwrap_or(http_code);
    Status::failure(s.message.as_deref().unwrap_or_default(), s.reason.as_deref().unwrap_or_default()).with_code(code)
}

/// What [`frames`] carries from one frame to the next.
struct Framing {
    data: BoxStream<'static, Result<Bytes, kube::Error>>,
    buf: BytesMut,
    /// After an error: the stream ends.
    done: bool,
}

/// The frames of a protobuf watch: each a 4-byte big-endian length, then that many bytes.
fn frames(
    data: BoxStream<'static, Result<Bytes, kube::Error>>,
) -> impl Stream<Item = Result<Bytes, kube::Error>> + Send + 'static {
    let state = Framing { data, buf: BytesMut::new(), done: false };
    futures::stream::unfold(state, |mut s| async move {
        let item = next_frame(&mut s).await?;
        if item.is_err() {
            s.done = true;
        }
        Some((item, s))
    })
}

async fn next_frame(s: &mut Framing) -> Option<Result<Bytes, kube::Error>> {
    if s.done {
        return None;
    }
    loop {
        if let Some(len) = s.buf.get(..4).and_then(|h| <[u8; 4]>::try_from(h).ok()).map(u32::from_be_bytes) {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_FRAME {
                return Some(Err(framing(format!("a watch frame of {len} bytes (more than {MAX_FRAME})"))));
            }
            if s.buf.len().saturating_sub(4) >= len {
                s.buf.advance(4);
                return Some(Ok(s.buf.split_to(len).freeze()));
            }
        }
        match s.data.next().await {
            Some(Ok(chunk)) => s.buf.extend_from_slice(&chunk),
            Some(Err(e)) => return Some(Err(e)),
            None if s.buf.is_empty() => return None,
            None => {
                let left = s.buf.len();
                return Some(Err(framing(format!("the watch ended inside a frame ({left} bytes left)"))));
            }
        }
    }
}

fn framing(message: String) -> kube::Error {
    kube::Error::ReadEvents(std::io::Error::new(std::io::ErrorKind::InvalidData, message))
}

/// One frame as a watch event.
fn change<K: Protobuf>(frame: Bytes) -> Result<Change<K>, ProtoError> {
    let event: proto::WatchEvent = proto::decode(frame, "WatchEvent")?;
    let raw = event.object.and_then(|o| o.raw).unwrap_or_default();
    let raw = proto::unwrap(raw)?;
    match event.type_.as_deref().unwrap_or_default() {
        "ADDED" | "MODIFIED" => Ok(Change::Apply(K::decode(raw)?)),
        "DELETED" => Ok(Change::Delete(K::decode(raw)?)),
        "BOOKMARK" => Ok(Change::Bookmark(proto::resource_version(raw)?)),
        "ERROR" => Ok(Change::Error(Box::new(status_of(proto::decode(raw, "Status")?, 500)))),
        other => Err(ProtoError::EventType(other.to_string())),
    }
}

/// Where a watcher is.
enum State<K> {
    /// Nothing listed: list from the start.
    Empty,
    /// Listing: the objects of the page read, and the next page's token.
    Listing { continue_token: Option<String>, objects: VecDeque<K>, resource_version: Option<String> },
    /// Listed (or a watch ended): watch from `resource_version`.
    Listed { resource_version: String },
    /// Watching.
    Watching { resource_version: String, changes: BoxStream<'static, Result<Change<K>, kube::Error>> },
}

/// The watcher of `api` with `config`'s selectors and page size: kube-runtime's
/// `watcher(api, config)` over protobuf.
pub fn watcher<K>(
    api: ProtoApi<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()> + Protobuf + Send + 'static,
{
    futures::stream::unfold((api, config, State::Empty), |(api, config, mut state)| async move {
        loop {
            let (event, next) = step(&api, &config, state).await;
            state = next;
            if let Some(event) = event {
                return Some((event, (api, config, state)));
            }
        }
    })
}

/// The list parameters of one page.
pub fn list_params(config: &watcher::Config, continue_token: Option<String>) -> ListParams {
    ListParams {
        label_selector: config.label_selector.clone(),
        field_selector: config.field_selector.clone(),
        limit: config.page_size,
        continue_token,
        ..Default::default()
    }
}

/// One step: an event to hand on (or none, then step again) and the next state.
async fn step<K>(
    api: &ProtoApi<K>,
    config: &watcher::Config,
    state: State<K>,
) -> (Option<Result<Event<K>, watcher::Error>>, State<K>)
where
    K: Resource<DynamicType = ()> + Protobuf + Send + 'static,
{
    match state {
        State::Empty => (
            Some(Ok(Event::Init)),
            State::Listing { continue_token: None, objects: VecDeque::new(), resource_version: None },
        ),
        State::Listing { continue_token, mut objects, resource_version } => {
            if let Some(next) = objects.pop_front() {
                return (
                    Some(Ok(Event::InitApply(next))),
                    State::Listing { continue_token, objects, resource_version },
                );
            }
            if continue_token.is_none()
                && let Some(resource_version) = resource_version
            {
                return (Some(Ok(Event::InitDone)), State::Listed { resource_version });
            }
            match api.list(&list_params(config, continue_token)).await {
                Ok((items, meta)) => {
                    let resource_version = meta.resource_version.filter(|s| !s.is_empty());
                    let continue_token = meta.continue_.filter(|s| !s.is_empty());
                    if resource_version.is_none() && continue_token.is_none() {
                        return (Some(Err(watcher::Error::NoResourceVersion)), State::Empty);
                    }
                    (None, State::Listing { continue_token, objects: items.into(), resource_version })
                }
                Err(e) => (Some(Err(watcher::Error::InitialListFailed(e))), State::Empty),
            }
        }
        State::Listed { resource_version } => {
            let params = WatchParams {
                label_selector: config.label_selector.clone(),
                field_selector: config.field_selector.clone(),
                timeout: Some(config.timeout.unwrap_or(WATCH_TIMEOUT_SECS)),
                bookmarks: config.bookmarks,
                send_initial_events: false,
            };
            match api.watch(&params, &resource_version).await {
                Ok(changes) => (None, State::Watching { resource_version, changes }),
                Err(e) => (Some(Err(watcher::Error::WatchStartFailed(e))), State::Listed { resource_version }),
            }
        }
        State::Watching { resource_version, mut changes } => {
            let idle = Duration::from_secs(u64::from(config.timeout.unwrap_or(WATCH_TIMEOUT_SECS)))
                .saturating_add(IDLE_MARGIN);
            // Silent past the timeout: taken as ended.
            let next = tokio::time::timeout(idle, changes.next()).await.unwrap_or_default();
            match next {
                Some(Ok(Change::Apply(obj))) => match obj.meta().resource_version.clone() {
                    Some(rv) => (Some(Ok(Event::Apply(obj))), State::Watching { resource_version: rv, changes }),
                    None => (Some(Err(watcher::Error::NoResourceVersion)), State::Empty),
                },
                Some(Ok(Change::Delete(obj))) => match obj.meta().resource_version.clone() {
                    Some(rv) => (Some(Ok(Event::Delete(obj))), State::Watching { resource_version: rv, changes }),
                    None => (Some(Err(watcher::Error::NoResourceVersion)), State::Empty),
                },
                Some(Ok(Change::Bookmark(rv))) => (None, State::Watching { resource_version: rv, changes }),
                Some(Ok(Change::Error(status))) => {
                    // 410 Gone: the resourceVersion is too old, list again.
                    let next =
                        if status.code == 410 { State::Empty } else { State::Watching { resource_version, changes } };
                    (Some(Err(watcher::Error::WatchError(status))), next)
                }
                // An undecodable object: list again rather than go on without it.
                Some(Err(e @ kube::Error::ReadEvents(_))) if is_decode(&e) => {
                    (Some(Err(watcher::Error::WatchFailed(e))), State::Empty)
                }
                // A broken stream: watch again from the last resourceVersion.
                Some(Err(e)) => (Some(Err(watcher::Error::WatchFailed(e))), State::Listed { resource_version }),
                None => (None, State::Listed { resource_version }),
            }
        }
    }
}

/// Whether a read error is an object that could not be decoded (not a broken stream).
fn is_decode(e: &kube::Error) -> bool {
    matches!(e, kube::Error::ReadEvents(io) if io.get_ref().is_some_and(|inner| inner.is::<ProtoError>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::proto::{RawExtension, wrapped};
    use crate::collect::view::PodView;
    use prost::Message;

    fn framed(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            out.extend(u32::try_from(f.len()).unwrap().to_be_bytes());
            out.extend(*f);
        }
        out
    }

    /// `bytes` delivered in chunks of `size`.
    async fn read_frames(bytes: Vec<u8>, size: usize) -> Vec<Result<Bytes, String>> {
        let chunks: Vec<Result<Bytes, kube::Error>> =
            bytes.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        frames(futures::stream::iter(chunks).boxed()).map(|f| f.map_err(|e| e.to_string())).collect().await
    }

    #[tokio::test]
    async fn frames_are_cut_by_their_length_whatever_the_chunks() {
        let bytes = framed(&[b"one", b"", b"three33"]);
        for size in [1, 2, 5, 100] {
            let got = read_frames(bytes.clone(), size).await;
            let want: Vec<Result<Bytes, String>> =
                vec![Ok(Bytes::from_static(b"one")), Ok(Bytes::new()), Ok(Bytes::from_static(b"three33"))];
            assert_eq!(got, want, "chunks of {size}");
        }
    }

    #[tokio::test]
    async fn a_cut_or_absurd_frame_ends_the_stream_with_an_error() {
        let mut cut = framed(&[b"whole", b"half of it"]);
        cut.truncate(cut.len() - 4);
        let got = read_frames(cut, 3).await;
        assert_eq!(got.len(), 2);
        assert!(got[1].as_ref().is_err_and(|e| e.contains("ended inside a frame (10 bytes left)")), "{got:?}");

        let mut absurd = u32::MAX.to_be_bytes().to_vec();
        absurd.extend(b"more");
        let got = read_frames(absurd, 8).await;
        assert_eq!(got.len(), 1, "nothing after the error");
        assert!(got[0].as_ref().is_err_and(|e| e.contains("a watch frame of 4294967295 bytes")), "{got:?}");
    }

    fn event(type_: &str, kind: &str, object: &impl Message) -> Bytes {
        let raw = wrapped(Some(kind), object);
        proto::WatchEvent { type_: Some(type_.into()), object: Some(RawExtension { raw: Some(raw) }) }
            .encode_to_vec()
            .into()
    }

    #[test]
    fn each_event_type_becomes_its_change() {
        let pod = proto::Pod::default();
        assert!(matches!(change::<PodView>(event("ADDED", "Pod", &pod)), Ok(Change::Apply(_))));
        assert!(matches!(change::<PodView>(event("MODIFIED", "Pod", &pod)), Ok(Change::Apply(_))));
        assert!(matches!(change::<PodView>(event("DELETED", "Pod", &pod)), Ok(Change::Delete(_))));
        let gone = proto::Status {
            status: Some("Failure".into()),
            message: Some("too old resource version: 1 (2)".into()),
            reason: Some("Expired".into()),
            code: Some(410),
        };
        match change::<PodView>(event("ERROR", "Status", &gone)) {
            Ok(Change::Error(s)) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
            other => panic!("{other:?}"),
        }
        let e = change::<PodView>(event("SURPRISE", "Pod", &pod)).unwrap_err();
        assert!(e.to_string().contains("unknown type \"SURPRISE\""), "{e}");
    }

    #[test]
    fn an_error_answer_keeps_the_servers_status_or_its_text() {
        let forbidden = proto::Status {
            status: Some("Failure".into()),
            message: Some("pods is forbidden".into()),
            reason: Some("Forbidden".into()),
            code: Some(403),
        };
        let s = api_status(403, wrapped(None, &forbidden));
        assert_eq!((s.code, s.reason.as_str(), s.message.as_str()), (403, "Forbidden", "pods is forbidden"));
        let s = api_status(502, Bytes::from_static(b"<html>bad gateway</html>\n"));
        assert_eq!((s.code, s.message.as_str()), (502, "<html>bad gateway</html>"));
    }
}
