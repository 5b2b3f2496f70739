//! The stream's own connection: `XREADGROUP` and `XAUTOCLAIM` replies parsed
//! as they arrive, under the event limits.
//!
//! RESP gives an entry's field count and each value's length before the
//! bytes, so an entry over the limits is known before it is read: its bytes
//! are drained (read and dropped, a buffer at a time) and it is reported by
//! id, to be dead-lettered inside Redis. No hostile entry is ever held whole
//! here, and Redis serves a plain read, which costs it less than half of the
//! same read made from a Lua script (the script copies every entry into Lua
//! and back).
//!
//! One connection per partition for the ingest loop's reads, and one for
//! its lane filler's (`XRANGE` of entries waiting in lanes): reads on one
//! connection are never concurrent, and the filler never waits behind a
//! blocking read. It speaks RESP2, authenticates and selects
//! the database as the URL says, and is dropped on any error or cancelled
//! read and made again by the next one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

use hookd_core::EventLimits;

use crate::StoreError;
use crate::connection::Connection;

/// One stream entry as read: its id and its raw fields.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry id (`<ms>-<seq>`).
    pub id: String,
    /// Its fields, names and raw values, in order.
    pub fields: Vec<(String, Vec<u8>)>,
}

trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

type Conn = BufReader<Box<dyn Socket>>;

/// An entry refused as it was read (over the limits, or a field name that
/// is not UTF-8), left pending for the dead-letter script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub id: String,
    /// `too_many_fields`, `too_large` or `invalid_field_name`.
    pub reason: &'static str,
    pub message: String,
}

/// What one read returned.
#[derive(Debug, Default)]
pub(crate) struct Read {
    pub entries: Vec<Entry>,
    pub refused: Vec<Refused>,
    /// XAUTOCLAIM: where the next scan of the pending list starts (`0-0`
    /// when this one reached its end).
    pub cursor: Option<String>,
    /// XAUTOCLAIM: ids pending in the group whose entries were trimmed
    /// away (Redis dropped them from the pending list).
    pub trimmed: Vec<String>,
    /// XREADGROUP: the partition's reclaim count, read just before.
    pub epoch: u64,
    /// An ordered read that found nothing: the stream's last entry id.
    pub last_id: Option<String>,
}

/// What an ordered read (`lua/read.lua`) needs besides the stream.
pub(crate) struct OrderKeys {
    /// The partition's set of ordered endpoints.
    pub ordered: String,
    /// The read lists' name around the workspace.
    pub affixes: (String, &'static str),
    /// How long a read list lives (s).
    pub ttl: u64,
}

/// A read the server refused (its error line), apart from I/O failures.
#[derive(Debug)]
pub(crate) enum ReadError {
    Server(String),
    Store(StoreError),
}

type ReadResult<T> = std::result::Result<T, ReadError>;

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Store(StoreError::Redis(e.into()))
    }
}

pub(crate) struct EntryReader {
    /// Where to connect (the URL's node; on a cluster, its credentials).
    info: ConnectionInfo,
    /// On a cluster, asked which primary serves `stream` before connecting.
    cluster: Connection,
    stream: String,
    conn: Mutex<Option<Conn>>,
    /// Whether the partition had an ordered endpoint at the last read.
    ordered: AtomicBool,
}

/// Longest a read may take beyond its own blocking time (draining a large
/// hostile entry included) before the connection is given up.
const SLACK: Duration = Duration::from_secs(10);

/// The ordered read (see [`EntryReader::read_new`]).
const READ_SCRIPT: &str = include_str!("../lua/read.lua");

impl EntryReader {
    pub(crate) fn new(info: ConnectionInfo, cluster: Connection, stream: String) -> Self {
        Self {
            info,
            cluster,
            stream,
            conn: Mutex::new(None),
            // (Ordered until the first read says otherwise: an entry read
            // before an ordered endpoint is known would not be noted.)
            ordered: AtomicBool::new(true),
        }
    }

    /// Whether the partition had an ordered endpoint at the last read.
    pub(crate) fn ordered(&self) -> bool {
        self.ordered.load(Ordering::Relaxed)
    }

    /// Connects to the node serving the stream: the URL's, or on a cluster
    /// the primary its slot is on now (asked anew after every failure, so a
    /// failover or a resharding is followed).
    async fn connect(&self) -> ReadResult<Conn> {
        if self.cluster.is_cluster() {
            let (host, port) = self
                .cluster
                .primary_for(&self.stream)
                .await
                .map_err(|e| ReadError::Store(e.into()))?
                .ok_or_else(|| reply("no cluster node serves the stream's slot"))?;
            let info = self.info.clone().set_addr(ConnectionAddr::Tcp(host, port));
            return connect(&info).await;
        }
        connect(&self.info).await
    }

    /// `GET <epoch key>`, `SCARD <ordered endpoints>`, then `XREADGROUP
    /// GROUP <group> <consumer> COUNT <count> [BLOCK <ms>] STREAMS <stream>
    /// >`, in one write. While the partition has an ordered endpoint (as the
    /// last read found), the read is `lua/read.lua` instead, and waiting is
    /// an `XREAD BLOCK` after the stream's last entry, then that read again.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn read_new(
        &self,
        group: &str,
        consumer: &str,
        stream: &str,
        epoch_key: &str,
        order: &OrderKeys,
        count: usize,
        block: Option<Duration>,
        limits: &EventLimits,
    ) -> ReadResult<Read> {
        let mut packed = redis::cmd("GET").arg(epoch_key).get_packed_command();
        packed.extend(redis::cmd("SCARD").arg(&order.ordered).get_packed_command());
        if self.ordered.load(Ordering::Relaxed) {
            packed.extend(
                redis::cmd("EVAL")
                    .arg(READ_SCRIPT)
                    .arg(1)
                    .arg(stream)
                    .arg(group)
                    .arg(consumer)
                    .arg(count)
                    .arg(&order.affixes.0)
                    .arg(order.affixes.1)
                    .arg(hookd_core::event::MAX_ORDERING_KEY)
                    .arg(order.ttl)
                    .get_packed_command(),
            );
            let read = self
                .exchange(&packed, SLACK, Shape::EpochThenRead, limits)
                .await?;
            let (Some(block), Some(last)) = (block, &read.last_id) else {
                return Ok(read);
            };
            let wait = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(block.as_millis() as u64)
                .arg("STREAMS")
                .arg(stream)
                .arg(last)
                .get_packed_command();
            self.exchange(&wait, block + SLACK, Shape::Wait, limits)
                .await?;
            return self
                .exchange(&packed, SLACK, Shape::EpochThenRead, limits)
                .await;
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(stream).arg(">");
        packed.extend(cmd.get_packed_command());
        let wait = block.unwrap_or_default() + SLACK;
        self.exchange(&packed, wait, Shape::EpochThenRead, limits)
            .await
    }

    /// `XAUTOCLAIM <stream> <group> <consumer> <min idle ms> <cursor> COUNT <count>`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn reclaim(
        &self,
        group: &str,
        consumer: &str,
        stream: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
        limits: &EventLimits,
    ) -> ReadResult<Read> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(stream)
            .arg(group)
            .arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(count);
        self.exchange(&cmd.get_packed_command(), SLACK, Shape::AutoClaim, limits)
            .await
    }

    /// `XRANGE <stream> <first> <last> COUNT <count>`: entries read again
    /// (those waiting in lanes, `lanes.rs`), parsed as they arrive, as
    /// first reads are.
    pub(crate) async fn range(
        &self,
        stream: &str,
        first: &str,
        last: &str,
        count: usize,
        limits: &EventLimits,
    ) -> ReadResult<Read> {
        let cmd = redis::cmd("XRANGE")
            .arg(stream)
            .arg(first)
            .arg(last)
            .arg("COUNT")
            .arg(count)
            .get_packed_command();
        self.exchange(&cmd, SLACK, Shape::Range, limits).await
    }

    /// Sends one command and parses its reply (of `shape`), on the
    /// connection (made if there is none). Any failure, timeout or
    /// cancellation drops the connection: it may be mid-reply.
    async fn exchange(
        &self,
        command: &[u8],
        wait: Duration,
        shape: Shape,
        limits: &EventLimits,
    ) -> ReadResult<Read> {
        let mut slot = self.conn.lock().await;
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let done = tokio::time::timeout(wait, async {
            conn.get_mut().write_all(command).await?;
            shape.parse(&mut conn, limits).await
        })
        .await;
        match done {
            Ok(Ok(read)) => {
                *slot = Some(conn);
                if let Some(ordered) = read.ordered {
                    self.ordered.store(ordered, Ordering::Relaxed);
                }
                Ok(read.read)
            }
            // The server's refusal ends its reply: the connection is fine,
            // unless the slot is served elsewhere now (a failover, a resharding).
            Ok(Err(ReadError::Server(e))) => {
                let moved = [
                    "MOVED",
                    "ASK",
                    "CLUSTERDOWN",
                    "READONLY",
                    "TRYAGAIN",
                    "UNBLOCKED",
                ]
                .iter()
                .any(|code| e.starts_with(code));
                if !moved {
                    *slot = Some(conn);
                }
                Err(ReadError::Server(e))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(reply("the stream read timed out")),
        }
    }
}

/// The replies read here.
#[derive(Clone, Copy)]
enum Shape {
    /// GET (a number, or nil), SCARD, then XREADGROUP: nil when nothing
    /// came, else `[[stream, entries]]` (or `lua/read.lua`: the same, or
    /// `[[last id, []]]` when nothing came).
    EpochThenRead,
    /// XREAD: only waited on (its entries are read with the group's read).
    Wait,
    /// XAUTOCLAIM: `[next cursor, entries, deleted ids]` (Redis 7).
    AutoClaim,
    /// XRANGE: `entries`.
    Range,
}

/// A read, and whether the partition has an ordered endpoint (when asked).
struct Parsed {
    read: Read,
    ordered: Option<bool>,
}

impl Shape {
    async fn parse(self, conn: &mut Conn, limits: &EventLimits) -> ReadResult<Parsed> {
        let mut read = Read::default();
        let mut ordered = None;
        match self {
            Shape::EpochThenRead => {
                read.epoch = match head(conn).await? {
                    Head::Len(b'$', n) if n >= 0 => {
                        String::from_utf8_lossy(&bulk_body(conn, n as u64).await?)
                            .parse()
                            .unwrap_or(0)
                    }
                    // (0 is the safe answer: a settle then asks about every entry.)
                    _ => 0,
                };
                ordered = match head(conn).await? {
                    Head::Len(b':', n) => Some(n > 0),
                    Head::Error(e) => return Err(ReadError::Server(e)),
                    _ => return Err(reply("SCARD: not a number")),
                };
                if let Some(streams) = array(conn).await? {
                    for _ in 0..streams {
                        expect_array(conn, 2).await?;
                        let name = short_string(conn).await?;
                        let before = read.entries.len() + read.refused.len();
                        entries(conn, limits, &mut read).await?;
                        if read.entries.len() + read.refused.len() == before {
                            read.last_id = Some(name);
                        }
                    }
                }
            }
            Shape::Wait => drain_value(conn).await?,
            Shape::AutoClaim => {
                let parts = array(conn).await?.unwrap_or(0);
                if parts < 2 {
                    return Err(reply("XAUTOCLAIM: a short reply"));
                }
                read.cursor = Some(short_string(conn).await?);
                entries(conn, limits, &mut read).await?;
                if parts >= 3 {
                    for _ in 0..array(conn).await?.unwrap_or(0) {
                        read.trimmed.push(short_string(conn).await?);
                    }
                }
                for _ in 3..parts {
                    drain_value(conn).await?;
                }
            }
            Shape::Range => entries(conn, limits, &mut read).await?,
        }
        Ok(Parsed { read, ordered })
    }
}

fn reply(message: &str) -> ReadError {
    ReadError::Store(StoreError::Reply(message.to_string()))
}

async fn connect(info: &ConnectionInfo) -> ReadResult<Conn> {
    let socket: Box<dyn Socket> = match info.addr() {
        ConnectionAddr::Tcp(host, port) => {
            let tcp = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::TcpStream::connect((host.as_str(), *port)),
            )
            .await
            .map_err(|_| reply("connecting to Redis timed out"))??;
            tcp.set_nodelay(true)?;
            Box::new(tcp)
        }
        #[cfg(unix)]
        ConnectionAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        other => {
            return Err(reply(&format!(
                "the stream reader cannot connect to {other:?}"
            )));
        }
    };
    let mut conn = BufReader::with_capacity(64 * 1024, socket);
    let redis = info.redis_settings();
    if let Some(password) = redis.password() {
        let mut auth = redis::cmd("AUTH");
        if let Some(user) = redis.username() {
            auth.arg(user);
        }
        auth.arg(password);
        simple(&mut conn, &auth.get_packed_command()).await?;
    }
    if redis.db() != 0 {
        simple(
            &mut conn,
            &redis::cmd("SELECT").arg(redis.db()).get_packed_command(),
        )
        .await?;
    }
    Ok(conn)
}

/// Sends a command whose reply is `+OK` (or an error).
async fn simple(conn: &mut Conn, command: &[u8]) -> ReadResult<()> {
    conn.get_mut().write_all(command).await?;
    match head(conn).await? {
        Head::Simple => Ok(()),
        Head::Error(e) => Err(ReadError::Store(StoreError::Reply(format!(
            "the stream reader's connection was refused: {e}"
        )))),
        Head::Len(..) => Err(reply("an unexpected reply from Redis")),
    }
}

/// Longest header or error line accepted (lengths are short; errors too).
const MAX_LINE: u64 = 64 * 1024;

/// One RESP line.
#[derive(Debug)]
enum Head {
    /// `*`, `$` or `:` and its number (negative for nil).
    Len(u8, i64),
    /// `+...` (`+OK`)
    Simple,
    /// `-...`: the server refused the command.
    Error(String),
}

/// Reads one line, parsed in the buffer when it is all there (the usual case).
async fn head(conn: &mut Conn) -> ReadResult<Head> {
    let buf = conn.fill_buf().await?;
    if let Some(end) = buf.iter().position(|&b| b == b'\n') {
        let head = parse_head(&buf[..=end])?;
        conn.consume(end + 1);
        return Ok(head);
    }
    let mut line = Vec::new();
    (&mut *conn)
        .take(MAX_LINE)
        .read_until(b'\n', &mut line)
        .await?;
    parse_head(&line)
}

fn parse_head(line: &[u8]) -> ReadResult<Head> {
    if line.is_empty() {
        return Err(reply("the connection to Redis closed"));
    }
    if line.len() < 3 || !line.ends_with(b"\r\n") {
        return Err(reply("a malformed reply line from Redis"));
    }
    let body = &line[1..line.len() - 2];
    match line[0] {
        kind @ (b'*' | b'$' | b':') => std::str::from_utf8(body)
            .ok()
            .and_then(|t| t.parse().ok())
            .map(|n| Head::Len(kind, n))
            .ok_or_else(|| reply("a malformed length in a reply from Redis")),
        b'+' => Ok(Head::Simple),
        b'-' => Ok(Head::Error(String::from_utf8_lossy(body).into_owned())),
        _ => Err(reply("a reply from Redis of a type not expected here")),
    }
}

/// An array's length, `None` for nil; a server error is [`ReadError::Server`].
async fn array(conn: &mut Conn) -> ReadResult<Option<usize>> {
    match head(conn).await? {
        Head::Len(b'*' | b'$', n) if n < 0 => Ok(None),
        Head::Len(b'*', n) => Ok(Some(n as usize)),
        Head::Error(e) => Err(ReadError::Server(e)),
        _ => Err(reply("expected an array from Redis")),
    }
}

async fn expect_array(conn: &mut Conn, n: usize) -> ReadResult<()> {
    match array(conn).await? {
        Some(found) if found == n => Ok(()),
        _ => Err(reply("a reply from Redis of an unexpected shape")),
    }
}

/// A bulk string's length, `None` for nil.
async fn bulk_len(conn: &mut Conn) -> ReadResult<Option<u64>> {
    match head(conn).await? {
        Head::Len(b'$', n) => Ok((n >= 0).then_some(n as u64)),
        _ => Err(reply("expected a string from Redis")),
    }
}

/// A bulk string no longer than a line (an id, a cursor).
async fn short_string(conn: &mut Conn) -> ReadResult<String> {
    let n = bulk_len(conn)
        .await?
        .ok_or_else(|| reply("expected an id from Redis"))?;
    if n > MAX_LINE {
        return Err(reply("an id of an impossible length"));
    }
    Ok(String::from_utf8_lossy(&bulk_body(conn, n).await?).into_owned())
}

/// Reads `n` bytes of a bulk string and its `\r\n`.
async fn bulk_body(conn: &mut Conn, n: u64) -> ReadResult<Vec<u8>> {
    let mut body = vec![0; n as usize + 2];
    conn.read_exact(&mut body).await?;
    body.truncate(n as usize);
    Ok(body)
}

/// Reads and drops `n` bytes of a bulk string and its `\r\n`.
async fn skip(conn: &mut Conn, n: u64) -> ReadResult<()> {
    let skipped = tokio::io::copy(&mut (&mut *conn).take(n + 2), &mut tokio::io::sink()).await?;
    if skipped != n + 2 {
        return Err(reply("the connection to Redis closed mid-reply"));
    }
    Ok(())
}

/// Reads and drops one value of any shape (a stream name, a cursor, a list of ids).
async fn drain_value(conn: &mut Conn) -> ReadResult<()> {
    let mut owed: u64 = 1;
    while owed > 0 {
        owed -= 1;
        match head(conn).await? {
            Head::Len(b'$', n) if n >= 0 => skip(conn, n as u64).await?,
            Head::Len(b'*', n) if n > 0 => owed += n as u64,
            Head::Error(e) => return Err(ReadError::Server(e)),
            _ => {}
        }
    }
    Ok(())
}

/// An array of entries, `[id, [name, value, ...]]` each, into `read`.
async fn entries(conn: &mut Conn, limits: &EventLimits, read: &mut Read) -> ReadResult<()> {
    let n = array(conn).await?.unwrap_or(0);
    read.entries.reserve(n);
    for _ in 0..n {
        expect_array(conn, 2).await?;
        let id = short_string(conn).await?;
        // (A pending entry trimmed away comes back without fields: nothing to deliver.)
        let Some(flat) = array(conn).await? else {
            continue;
        };
        let count = flat / 2;
        if count > limits.max_fields {
            for _ in 0..flat {
                drain_value(conn).await?;
            }
            read.refused.push(Refused {
                id,
                reason: "too_many_fields",
                message: format!(
                    "{count} fields, over the limit of {} ([ingest] max_fields)",
                    limits.max_fields
                ),
            });
            continue;
        }
        let max = limits.max_entry_bytes() as u64;
        let mut total = 0u64;
        let mut fields = Vec::with_capacity(count);
        let mut name = None;
        let mut bad_name = false;
        for _ in 0..flat {
            let len = bulk_len(conn).await?.unwrap_or(0);
            total += len;
            if total > max || bad_name {
                skip(conn, len).await?;
                continue;
            }
            let body = bulk_body(conn, len).await?;
            match name.take() {
                None => match String::from_utf8(body) {
                    Ok(n) => name = Some(n),
                    // Names are how fields are told apart: one that is not
                    // text cannot be read faithfully (nor copied into the envelope).
                    Err(_) => bad_name = true,
                },
                Some(field) => fields.push((field, body)),
            }
        }
        if total > max {
            read.refused.push(Refused {
                id,
                reason: "too_large",
                message: format!(
                    "the entry is {total} bytes, over the limit ([ingest] max_payload_bytes)"
                ),
            });
        } else if bad_name {
            read.refused.push(Refused {
                id,
                reason: "invalid_field_name",
                message: "a field name is not valid UTF-8".to_string(),
            });
        } else {
            read.entries.push(Entry { id, fields });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn_over(bytes: &'static [u8]) -> Conn {
        BufReader::with_capacity(16, Box::new(tokio_test_stream(bytes)) as Box<dyn Socket>)
    }

    /// A socket that reads from a fixed buffer and swallows writes.
    fn tokio_test_stream(bytes: &'static [u8]) -> impl Socket {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            server.write_all(bytes).await.ok();
            // Keep the server end open until the reader is done with it.
            let mut sink = Vec::new();
            server.read_to_end(&mut sink).await.ok();
        });
        client
    }

    fn limits() -> EventLimits {
        EventLimits {
            max_payload_bytes: 10,
            max_fields: 2,
        }
    }

    #[tokio::test]
    async fn entries_within_the_limits_are_read_and_the_others_drained_by_id() {
        // Max entry bytes is 10 + 1024: the third entry's value is over it.
        let big = "x".repeat(1100);
        let reply = format!(
            "*3\r\n\
             *2\r\n$3\r\n1-0\r\n*4\r\n$4\r\ntype\r\n$1\r\na\r\n$4\r\ndata\r\n$2\r\n{{}}\r\n\
             *2\r\n$3\r\n2-0\r\n*6\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n3\r\n\
             *2\r\n$3\r\n3-0\r\n*2\r\n$4\r\ndata\r\n${}\r\n{big}\r\n",
            big.len()
        );
        let reply: &'static [u8] = Box::leak(reply.into_bytes().into_boxed_slice());
        let mut conn = conn_over(reply);
        let mut read = Read::default();
        entries(&mut conn, &limits(), &mut read).await.unwrap();
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.entries[0].id, "1-0");
        assert_eq!(
            read.entries[0].fields,
            vec![
                ("type".to_string(), b"a".to_vec()),
                ("data".to_string(), b"{}".to_vec())
            ]
        );
        let reasons: Vec<_> = read
            .refused
            .iter()
            .map(|o| (o.id.as_str(), o.reason))
            .collect();
        assert_eq!(reasons, [("2-0", "too_many_fields"), ("3-0", "too_large")]);
        assert!(read.refused[1].message.contains("1104 bytes"));
    }

    #[tokio::test]
    async fn nil_and_errors_are_told_apart() {
        let mut conn = conn_over(b"*-1\r\n-NOGROUP No such key\r\n");
        assert_eq!(array(&mut conn).await.unwrap(), None);
        match array(&mut conn).await {
            Err(ReadError::Server(e)) => assert!(e.starts_with("NOGROUP")),
            other => panic!("{other:?}"),
        }
    }
}
