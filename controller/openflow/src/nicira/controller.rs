//! NXAST_CONTROLLER2 (37): send the packet to the controller, with
//! properties (Open vSwitch `ofp-actions.c`, `nx_action_controller2_prop_type`).
//!
//! ```text
//! | subtype:16 | pad:48 | properties... |
//! property: | type:16 | len:16 (4 + value, no padding) | value | zero pad to 8 |
//! ```
//! As in OpenFlow's own properties, a 16-bit value takes 4 bytes (value,
//! then two zero bytes): `max_len` and `id` have length 8, `reason` 5.
//! A property absent means its default: all of the packet, controller 0,
//! reason OFPR_ACTION, no userdata, no pause, no meter.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Result;
use crate::wire::{len16, pad8, patch_u16, put_zeros, Reader};

/// `nx_action_controller2_prop_type` numbers.
pub mod controller2_prop {
    pub const MAX_LEN: u16 = 0;
    pub const CONTROLLER_ID: u16 = 1;
    pub const REASON: u16 = 2;
    pub const USERDATA: u16 = 3;
    pub const PAUSE: u16 = 4;
    pub const METER_ID: u16 = 5;
}

/// One NXAST_CONTROLLER2 property, in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Controller2Prop {
    /// Bytes of the packet to send (`max_len=`).
    MaxLen(u16),
    /// Connection to send it on (`id=`).
    ControllerId(u16),
    /// The packet-in's reason (`OFPR_*`, `reason=`).
    Reason(u8),
    /// Copied into the packet-in (`userdata=`).
    Userdata(Bytes),
    /// Pause the pipeline until the controller resumes it (`pause`).
    Pause,
    /// Meter for the packet-ins (`meter_id=`).
    MeterId(u32),
    /// Any other type, or a known one of unexpected length: `data` is the
    /// value after the 4-byte header, without padding.
    Unknown { prop_type: u16, data: Bytes },
}

impl Controller2Prop {
    fn prop_type(&self) -> u16 {
        use controller2_prop::*;
        match self {
            Controller2Prop::MaxLen(_) => MAX_LEN,
            Controller2Prop::ControllerId(_) => CONTROLLER_ID,
            Controller2Prop::Reason(_) => REASON,
            Controller2Prop::Userdata(_) => USERDATA,
            Controller2Prop::Pause => PAUSE,
            Controller2Prop::MeterId(_) => METER_ID,
            Controller2Prop::Unknown { prop_type, .. } => *prop_type,
        }
    }

    pub(crate) fn emit(&self, out: &mut BytesMut) {
        let start = out.len();
        out.put_u16(self.prop_type());
        out.put_u16(0);
        match self {
            Controller2Prop::MaxLen(v) | Controller2Prop::ControllerId(v) => {
                out.put_u16(*v);
                out.put_u16(0);
            }
            Controller2Prop::Reason(v) => out.put_u8(*v),
            Controller2Prop::Userdata(data) | Controller2Prop::Unknown { data, .. } => {
                out.put_slice(data)
            }
            Controller2Prop::Pause => {}
            Controller2Prop::MeterId(v) => out.put_u32(*v),
        }
        // The length leaves out the padding.
        let len = out.len() - start;
        patch_u16(out, start + 2, len16(len));
        put_zeros(out, pad8(len));
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Controller2Prop> {
        use controller2_prop::*;
        let (prop_type, len, mut value) = r.tlv("controller2 property", 4, 1)?;
        r.skip(pad8(len))?;
        let fixed = |size: usize| len == 4 + size;
        Ok(match prop_type {
            MAX_LEN if fixed(4) => Controller2Prop::MaxLen(value.u16()?),
            CONTROLLER_ID if fixed(4) => Controller2Prop::ControllerId(value.u16()?),
            REASON if fixed(1) => Controller2Prop::Reason(value.u8()?),
            USERDATA => Controller2Prop::Userdata(value.rest_owned()),
            PAUSE if fixed(0) => Controller2Prop::Pause,
            METER_ID if fixed(4) => Controller2Prop::MeterId(value.u32()?),
            _ => Controller2Prop::Unknown {
                prop_type,
                data: value.rest_owned(),
            },
        })
    }
}
