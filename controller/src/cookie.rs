//! The cookie scheme: every flow Flowgate installs carries a 64-bit cookie
//! whose high 16 bits name the owner module and whose low 48 bits name the
//! object (rule id, network id, host hash, ...) it was compiled from. The
//! reconciler only touches flows whose owner is a known Flowgate module, and
//! stats map back to rules through the object part.

/// Bits of the cookie that hold the owner id.
pub const OWNER_SHIFT: u32 = 48;
/// Mask selecting the owner part of a cookie (for OpenFlow `cookie_mask`).
pub const OWNER_MASK: u64 = 0xffff << OWNER_SHIFT;
/// Mask selecting the object part of a cookie.
pub const OBJECT_MASK: u64 = (1 << OWNER_SHIFT) - 1;

/// A module that owns flows. The numeric ids are part of the on-switch
/// format: never renumber, only append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// Pipeline skeleton: table-miss entries, LLDP trap, port security.
    Core,
    Forwarding,
    Overlay,
    Firewall,
    LoadBalancer,
    Qos,
    HostAware,
    Topology,
}

impl Owner {
    pub const ALL: [Owner; 8] = [
        Owner::Core,
        Owner::Forwarding,
        Owner::Overlay,
        Owner::Firewall,
        Owner::LoadBalancer,
        Owner::Qos,
        Owner::HostAware,
        Owner::Topology,
    ];

    pub const fn id(self) -> u16 {
        match self {
            Owner::Core => 0xf001,
            Owner::Forwarding => 0xf002,
            Owner::Overlay => 0xf003,
            Owner::Firewall => 0xf004,
            Owner::LoadBalancer => 0xf005,
            Owner::Qos => 0xf006,
            Owner::HostAware => 0xf007,
            Owner::Topology => 0xf008,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Owner::Core => "core",
            Owner::Forwarding => "forwarding",
            Owner::Overlay => "overlay",
            Owner::Firewall => "firewall",
            Owner::LoadBalancer => "loadbalancer",
            Owner::Qos => "qos",
            Owner::HostAware => "hostaware",
            Owner::Topology => "topology",
        }
    }

    pub fn from_id(id: u16) -> Option<Owner> {
        Owner::ALL.into_iter().find(|o| o.id() == id)
    }

    /// The cookie for `object` (truncated to 48 bits) owned by this module.
    pub const fn cookie(self, object: u64) -> u64 {
        ((self.id() as u64) << OWNER_SHIFT) | (object & OBJECT_MASK)
    }

    /// The cookie value with only the owner bits set, for masked stats/deletes.
    pub const fn cookie_prefix(self) -> u64 {
        (self.id() as u64) << OWNER_SHIFT
    }
}

/// Bits of a group or meter id that hold the owner's index (see
/// [`Owner::group_id`]).
pub const ID_OWNER_SHIFT: u32 = 24;
/// Most local group or meter ids one owner has.
pub const LOCAL_ID_MASK: u32 = (1 << ID_OWNER_SHIFT) - 1;

impl Owner {
    /// The index that names this owner in group and meter ids: the low
    /// byte of its cookie id (0xf005 -> 5).
    const fn index(self) -> u32 {
        (self.id() & 0xff) as u32
    }

    /// The wire id of this owner's group `local` (< 2^24): owners have
    /// disjoint id ranges, so a group found on a switch after a restart
    /// names its owner the way a flow's cookie does. Open vSwitch accepts
    /// ids up to 0xffffff00; ours are below 0x0900_0000.
    pub const fn group_id(self, local: u32) -> u32 {
        (self.index() << ID_OWNER_SHIFT) | (local & LOCAL_ID_MASK)
    }

    /// The wire id of this owner's meter `local` (< 2^24), in the same
    /// scheme as [`Owner::group_id`] (meter ids go up to 0xffff0000).
    pub const fn meter_id(self, local: u32) -> u32 {
        self.group_id(local)
    }
}

/// The module that owns a group or meter with this wire id, if Flowgate
/// allocated it (see [`Owner::group_id`]).
pub fn owner_of_id(id: u32) -> Option<Owner> {
    let index = id >> ID_OWNER_SHIFT;
    Owner::ALL
        .into_iter()
        .find(|o| o.index() == index && index != 0)
}

/// The local part of an owned group or meter id.
pub const fn local_id(id: u32) -> u32 {
    id & LOCAL_ID_MASK
}

/// The module that owns a flow with this cookie, if Flowgate wrote it.
pub fn owner_of(cookie: u64) -> Option<Owner> {
    Owner::from_id((cookie >> OWNER_SHIFT) as u16)
}

/// The object part of a cookie.
pub const fn object_of(cookie: u64) -> u64 {
    cookie & OBJECT_MASK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_round_trips_owner_and_object() {
        for owner in Owner::ALL {
            let c = owner.cookie(0x1234_5678_9abc);
            assert_eq!(owner_of(c), Some(owner));
            assert_eq!(object_of(c), 0x1234_5678_9abc);
            assert_eq!(c & OWNER_MASK, owner.cookie_prefix());
        }
    }

    #[test]
    fn foreign_cookies_have_no_owner() {
        assert_eq!(owner_of(0), None);
        assert_eq!(owner_of(0x0001_0000_0000_0000), None);
    }

    #[test]
    fn group_and_meter_ids_name_their_owner() {
        for owner in Owner::ALL {
            let id = owner.group_id(77);
            assert_eq!(owner_of_id(id), Some(owner));
            assert_eq!(local_id(id), 77);
            assert!(id < 0xffff_0000, "a valid OpenFlow meter and group id");
        }
        assert_eq!(Owner::LoadBalancer.group_id(1), 0x0500_0001);
        assert_eq!(owner_of_id(1), None, "foreign ids have no owner");
        assert_eq!(owner_of_id(0xffff_fff0), None);
    }

    #[test]
    fn object_is_truncated_to_48_bits() {
        assert_eq!(object_of(Owner::Core.cookie(u64::MAX)), OBJECT_MASK);
    }
}
