//! A switch whose tables are unknown: it did not answer a sync dump (see
//! [`SyncDump`]), so there is nothing to diff against. Flowgate's share of
//! such a table is replaced: deleted wholesale, then sent in full by the
//! usual reconciliation, which finds nothing installed there.
//!
//! The cost, against a diff: every Flowgate entry is written again (their
//! counters restart) and, between the delete and the add, packets meet the
//! switch's table without them; entries Flowgate would have adopted after a
//! restart (learned hosts) are forgotten and learned again.

use flowgate_openflow::{
    self as of, FlowMod, FlowModCommand, GroupMod, GroupModCommand, GroupType, Match, Message,
    MeterMod, MeterModCommand,
};

use crate::cookie::{Owner, OWNER_MASK};
use crate::runtime::session::{SwitchSync, SyncDump};

/// The messages that delete Flowgate's share of the tables `sync` left
/// unknown, in the order to send them (flows before the groups and meters
/// they may use). OpenFlow 1.3: per owner a DELETE of every flow with its
/// cookie prefix (the cookie mask keeps an operator's flows), and all
/// groups and meters, which Flowgate owns outright. OpenFlow 1.0 has no
/// cookie mask, so nothing: a delete there would take the operator's flows
/// too; Flowgate's stale entries there remain until they time out.
pub fn clearing(sync: &SwitchSync) -> Vec<Message> {
    if sync.version == of::OFP_VERSION_1_0 {
        return Vec::new();
    }
    let unknown = |dump| sync.unknown.contains(&dump);
    let mut messages = Vec::new();
    if unknown(SyncDump::Flows) {
        messages.extend(Owner::ALL.into_iter().map(delete_flows_of));
    }
    if unknown(SyncDump::Groups) {
        messages.push(Message::GroupMod(GroupMod {
            command: GroupModCommand::Delete,
            group_type: GroupType::All,
            group_id: of::OFPG_ALL,
            buckets: Vec::new(),
        }));
    }
    if unknown(SyncDump::Meters) {
        messages.push(Message::MeterMod(MeterMod {
            command: MeterModCommand::Delete,
            flags: 0,
            meter_id: of::OFPM_ALL,
            bands: Vec::new(),
        }));
    }
    messages
}

/// DELETE of every flow, in every table, whose cookie names `owner`.
fn delete_flows_of(owner: Owner) -> Message {
    Message::FlowMod(FlowMod {
        cookie: owner.cookie_prefix(),
        cookie_mask: OWNER_MASK,
        table_id: of::OFPTT_ALL,
        command: FlowModCommand::Delete,
        idle_timeout: 0,
        hard_timeout: 0,
        priority: 0,
        buffer_id: of::NO_BUFFER,
        out_port: of::port_no::ANY,
        out_group: of::OFPG_ANY,
        flags: 0,
        match_: Match::default(),
        instructions: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(version: u8, unknown: Vec<SyncDump>) -> SwitchSync {
        SwitchSync {
            version,
            features: of::SwitchFeatures {
                datapath_id: 1,
                n_buffers: 0,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0,
                reserved: 0,
            },
            desc: None,
            ports: Vec::new(),
            flows: Vec::new(),
            groups: Vec::new(),
            meters: Vec::new(),
            unknown,
        }
    }

    #[test]
    fn a_known_switch_needs_no_clearing() {
        let known = sync(of::OFP_VERSION_1_3, vec![SyncDump::Desc]);
        assert!(clearing(&known).is_empty());
    }

    #[test]
    fn an_unknown_flow_table_loses_every_flowgate_flow_and_nothing_else() {
        let unknown = sync(of::OFP_VERSION_1_3, vec![SyncDump::Flows]);
        let messages = clearing(&unknown);
        assert_eq!(messages.len(), Owner::ALL.len());
        for (message, owner) in messages.iter().zip(Owner::ALL) {
            let Message::FlowMod(fm) = message else {
                panic!("{message:?}")
            };
            assert_eq!(fm.command, FlowModCommand::Delete);
            assert_eq!(fm.table_id, of::OFPTT_ALL);
            // Exactly the owner's cookies: a foreign cookie never matches.
            assert_eq!(fm.cookie & fm.cookie_mask, owner.cookie(0));
            assert_ne!(0x1234 & fm.cookie_mask, fm.cookie);
        }
    }

    #[test]
    fn unknown_groups_and_meters_are_deleted_after_the_flows() {
        let unknown = sync(
            of::OFP_VERSION_1_3,
            vec![SyncDump::Meters, SyncDump::Flows, SyncDump::Groups],
        );
        let kinds: Vec<u8> = clearing(&unknown).iter().map(Message::msg_type).collect();
        let mut expected = vec![of::msg_type::FLOW_MOD; Owner::ALL.len()];
        expected.extend([of::msg_type::GROUP_MOD, of::msg_type::METER_MOD]);
        assert_eq!(kinds, expected);
    }

    #[test]
    fn openflow_10_can_not_delete_by_cookie_so_nothing_is_deleted() {
        let unknown = sync(of::OFP_VERSION_1_0, vec![SyncDump::Flows]);
        assert!(clearing(&unknown).is_empty());
    }
}
