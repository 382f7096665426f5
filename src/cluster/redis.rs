//! The Redis directory. Key layout (see docs/cluster.md):
//!
//! * `sluice:owner:{app}/{name}` = `node|rtmp://host:port`, with a lease
//!   (`PX`) the owner refreshes;
//! * `sluice:moving:{app}/{name}` = the owner value, set when the owner
//!   sent its publisher Go Away: a claim from another node then succeeds;
//! * `sluice:node:{id}` = JSON `{id, url, draining, liveness}`, with a lease;
//! * `sluice:alive:{id}` = `1`, with a short TTL ([`super::LIVENESS`]) the
//!   node refreshes several times a second: when it is gone, the node is
//!   dead, and its streams may be claimed at once instead of when their
//!   leases run out;
//! * channel `sluice:owners`: `{app}/{name} {owner value}` on every change
//!   (an empty value when released).
//!
//! Claims, releases and moves are Lua scripts, so each is one atomic step:
//! two nodes claiming at once get one winner, decided by Redis.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;

use super::directory::{Change, Claim, Directory, Fut, NodeRecord, Snapshot};

pub const CHANNEL: &str = "sluice:owners";

const CLAIM: &str = r#"
local cur = redis.call('GET', KEYS[1])
local dead = false
if cur and cur ~= ARGV[1] then
  -- The owner is dead when its liveness key is gone, for nodes that keep
  -- one (their record says so), or when even its record expired.
  local node = string.match(cur, '^([^|]*)|')
  if node then
    local rec = redis.call('GET', 'sluice:node:' .. node)
    if not rec then
      dead = true
    elseif string.find(rec, '"liveness":true', 1, true)
        and redis.call('EXISTS', 'sluice:alive:' .. node) == 0 then
      dead = true
    end
  end
end
if (not cur) or dead or cur == ARGV[1] or redis.call('GET', KEYS[2]) == cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('DEL', KEYS[2])
  if cur ~= ARGV[1] then
    redis.call('PUBLISH', ARGV[3], ARGV[4] .. ' ' .. ARGV[1])
  end
  return ''
end
return cur
"#;

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' ')
  return 1
end
return 0
";

const MOVING: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

pub struct RedisDirectory {
    client: redis::Client,
    conn: ConnectionManager,
    claim: Script,
    release: Script,
    moving: Script,
}

fn owner_key(stream: &str) -> String {
    format!("sluice:owner:{stream}")
}

fn moving_key(stream: &str) -> String {
    format!("sluice:moving:{stream}")
}

impl RedisDirectory {
    /// Connects lazily: a node starts even when Redis is down, and the
    /// connection manager reconnects in the background.
    pub async fn open(url: &str) -> anyhow::Result<RedisDirectory> {
        let client = redis::Client::open(url).with_context(|| format!("bad registry URL {url}"))?;
        // Short timeouts and few retries: a call that cannot reach Redis
        // must fail fast, so the node degrades to local service instead of
        // holding a publisher's command.
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(1000)))
            .set_response_timeout(Some(Duration::from_millis(1000)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(1000));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), cfg)
            .context("registry connection")?;
        Ok(RedisDirectory {
            client,
            conn,
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            moving: Script::new(MOVING),
        })
    }
}

impl Directory for RedisDirectory {
    fn claim<'a>(&'a self, stream: &'a str, me: &'a str, lease: Duration) -> Fut<'a, Claim> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let cur: String = self
                .claim
                .key(owner_key(stream))
                .key(moving_key(stream))
                .arg(me)
                .arg(lease.as_millis() as u64)
                .arg(CHANNEL)
                .arg(stream)
                .invoke_async(&mut c)
                .await?;
            Ok(if cur.is_empty() {
                Claim::Owned
            } else {
                Claim::Taken(cur)
            })
        })
    }

    fn release<'a>(&'a self, stream: &'a str, me: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let _: i64 = self
                .release
                .key(owner_key(stream))
                .key(moving_key(stream))
                .arg(me)
                .arg(CHANNEL)
                .arg(stream)
                .invoke_async(&mut c)
                .await?;
            Ok(())
        })
    }

    fn mark_moving<'a>(&'a self, stream: &'a str, me: &'a str, lease: Duration) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let _: i64 = self
                .moving
                .key(owner_key(stream))
                .key(moving_key(stream))
                .arg(me)
                .arg(lease.as_millis() as u64)
                .invoke_async(&mut c)
                .await?;
            Ok(())
        })
    }

    fn owner<'a>(&'a self, stream: &'a str) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            Ok(c.get(owner_key(stream)).await?)
        })
    }

    fn heartbeat<'a>(&'a self, node: &'a NodeRecord, lease: Duration) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let v = serde_json::to_string(node)?;
            let _: () = c
                .pset_ex(
                    format!("sluice:node:{}", node.id),
                    v,
                    lease.as_millis() as u64,
                )
                .await?;
            Ok(())
        })
    }

    fn alive<'a>(&'a self, node: &'a str, ttl: Duration) -> Fut<'a, ()> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let _: () = c
                .pset_ex(format!("sluice:alive:{node}"), 1, ttl.as_millis() as u64)
                .await?;
            Ok(())
        })
    }

    fn snapshot(&self) -> Fut<'_, Snapshot> {
        Box::pin(async move {
            let mut c = self.conn.clone();
            let mut node_keys: Vec<String> = Vec::new();
            {
                let mut it = c.scan_match::<_, String>("sluice:node:*").await?;
                while let Some(k) = it.next().await {
                    node_keys.push(k?);
                }
            }
            let mut owner_keys: Vec<String> = Vec::new();
            {
                let mut it = c.scan_match::<_, String>("sluice:owner:*").await?;
                while let Some(k) = it.next().await {
                    owner_keys.push(k?);
                }
            }
            let mut nodes = Vec::new();
            for k in node_keys {
                let v: Option<String> = c.get(&k).await?;
                if let Some(n) = v.and_then(|v| parse_node(&v)) {
                    nodes.push(n);
                }
            }
            nodes.sort_by(|a, b| a.id.cmp(&b.id));
            let mut streams = Vec::new();
            for k in owner_keys {
                let v: Option<String> = c.get(&k).await?;
                if let (Some(s), Some(v)) = (k.strip_prefix("sluice:owner:"), v) {
                    streams.push((s.to_owned(), v));
                }
            }
            streams.sort();
            Ok((nodes, streams))
        })
    }

    fn watch(&self, tx: mpsc::Sender<Change>) -> Fut<'_, ()> {
        Box::pin(async move {
            let mut ps = self.client.get_async_pubsub().await?;
            ps.subscribe(CHANNEL).await?;
            let mut msgs = ps.on_message();
            while let Some(m) = msgs.next().await {
                let Ok(text) = m.get_payload::<String>() else {
                    continue;
                };
                if let Some(c) = parse_change(&text) {
                    if tx.send(c).await.is_err() {
                        break;
                    }
                }
            }
            anyhow::bail!("subscription to {CHANNEL} ended")
        })
    }
}

fn parse_node(v: &str) -> Option<NodeRecord> {
    let j: serde_json::Value = serde_json::from_str(v).ok()?;
    Some(NodeRecord {
        id: j.get("id")?.as_str()?.to_owned(),
        url: j.get("url")?.as_str()?.to_owned(),
        draining: j.get("draining")?.as_bool()?,
        liveness: j.get("liveness").and_then(|v| v.as_bool()).unwrap_or(false),
    })
}

/// `{app}/{name} {owner}`; the name may not contain spaces, the owner
/// (`node|url`) never does.
pub fn parse_change(text: &str) -> Option<Change> {
    let (stream, owner) = text.rsplit_once(' ')?;
    Some(Change {
        stream: stream.to_owned(),
        owner: (!owner.is_empty()).then(|| owner.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_messages() {
        assert_eq!(
            parse_change("live/cam node-b|rtmp://10.0.0.6:1935"),
            Some(Change {
                stream: "live/cam".into(),
                owner: Some("node-b|rtmp://10.0.0.6:1935".into())
            })
        );
        assert_eq!(parse_change("live/cam ").unwrap().owner, None);
        assert_eq!(parse_change("nospace"), None);
        let n = parse_node(r#"{"id":"a","url":"rtmp://h:1","draining":true}"#).unwrap();
        assert!(n.draining && n.id == "a");
    }
}
