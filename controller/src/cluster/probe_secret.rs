//! The cluster's discovery-probe secret, kept in etcd: created once by
//! whichever node starts first (a put-if-absent transaction), read by
//! every node at start. With it every node believes the probes any node
//! sends (`topology::auth::ProbeKey::shared`).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp, TxnOpResponse};
use flowgate_cluster::keys;

use super::etcd::KEYS_ROOT;
use crate::store::{connect_options, EtcdConfig};

/// Bytes of a new secret.
const SECRET_LEN: usize = 32;

/// The secret under the store's `cluster/probe-secret`, created now if
/// no node did before.
pub async fn shared_probe_secret(config: &EtcdConfig) -> anyhow::Result<Vec<u8>> {
    let key = format!(
        "{}{}",
        config.prefix,
        keys::PROBE_SECRET
            .strip_prefix(KEYS_ROOT)
            .unwrap_or(keys::PROBE_SECRET)
    );
    let mut fresh = [0u8; SECRET_LEN];
    SystemRandom::new()
        .fill(&mut fresh)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    let endpoints = config.endpoints.join(",");
    let exchange = async {
        let options = connect_options(config)?;
        let mut kv = Client::connect(config.endpoints.clone(), Some(options))
            .await?
            .kv_client();
        // Ours if absent; either way the one that is there.
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), fresh.to_vec(), None)])
            .or_else([TxnOp::get(key.clone(), None)]);
        let answer = kv.txn(txn).await?;
        if answer.succeeded() {
            return Ok(fresh.to_vec());
        }
        let stored = answer.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        match stored {
            Some(secret) if secret.len() >= SECRET_LEN / 2 => Ok(secret),
            _ => anyhow::bail!("{key} holds no usable secret"),
        }
    };
    tokio::time::timeout(config.timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("etcd ({endpoints}) did not answer"))?
        .map_err(|e: anyhow::Error| {
            anyhow::anyhow!("etcd ({endpoints}): reading the probe secret: {e}")
        })
}
