//! Small controller/switch messages: HELLO, ERROR, EXPERIMENTER, features,
//! config, table-mod, role, async config and queue config (spec 7.3–7.5).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::wire::{len16, pad8, put_zeros, round8, Reader, Wire};

// ---------------------------------------------------------------- HELLO

/// `ofp_hello_elem_type` VERSIONBITMAP.
pub const OFPHET_VERSIONBITMAP: u16 = 1;

/// One HELLO element (spec 7.5.1): `| type: u16 | length: u16 | data |`
/// padded to 8 bytes; `length` excludes the padding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HelloElement {
    /// Bitmap words: bit `n` of word `n / 32` set = version `n` supported.
    VersionBitmap(Vec<u32>),
    /// Other element types (or a bitmap whose length is not whole words):
    /// `data` = bytes after the 4-byte header, excluding padding.
    Unknown { elem_type: u16, data: Bytes },
}

impl HelloElement {
    fn unpadded_len(&self) -> usize {
        match self {
            HelloElement::VersionBitmap(words) => 4 + 4 * words.len(),
            HelloElement::Unknown { data, .. } => 4 + data.len(),
        }
    }
}

impl Wire for HelloElement {
    /// Tolerates a missing final padding: HELLO must be readable from any
    /// peer for version negotiation to fail politely rather than abruptly.
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (elem_type, len, mut body) = r.tlv("hello element", 4, 1)?;
        r.skip(pad8(len).min(r.remaining()))?;
        if elem_type == OFPHET_VERSIONBITMAP && (len - 4) % 4 == 0 {
            let mut words = Vec::with_capacity((len - 4) / 4);
            while !body.is_empty() {
                words.push(body.u32()?);
            }
            return Ok(HelloElement::VersionBitmap(words));
        }
        Ok(HelloElement::Unknown {
            elem_type,
            data: body.rest_owned(),
        })
    }

    fn buffer_len(&self) -> usize {
        round8(self.unpadded_len())
    }

    fn emit(&self, out: &mut BytesMut) {
        let len = self.unpadded_len();
        match self {
            HelloElement::VersionBitmap(words) => {
                out.put_u16(OFPHET_VERSIONBITMAP);
                out.put_u16(len16(len));
                for w in words {
                    out.put_u32(*w);
                }
            }
            HelloElement::Unknown { elem_type, data } => {
                out.put_u16(*elem_type);
                out.put_u16(len16(len));
                out.put_slice(data);
            }
        }
        put_zeros(out, pad8(len));
    }
}

/// OFPT_HELLO body: a list of elements (empty for OF1.0-style hellos).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Hello {
    pub elements: Vec<HelloElement>,
}

impl Hello {
    /// A HELLO advertising exactly these wire versions (e.g. `&[1, 4]`).
    pub fn with_versions(versions: &[u8]) -> Self {
        let words = versions
            .iter()
            .map(|v| usize::from(*v) / 32 + 1)
            .max()
            .unwrap_or(0);
        let mut bitmap = vec![0u32; words];
        for v in versions {
            let v = usize::from(*v);
            bitmap[v / 32] |= 1 << (v % 32);
        }
        Hello {
            elements: vec![HelloElement::VersionBitmap(bitmap)],
        }
    }

    /// Versions from the first version-bitmap element, ascending; `None`
    /// when the peer sent no bitmap (then only the header version counts).
    pub fn versions(&self) -> Option<Vec<u8>> {
        self.elements.iter().find_map(|e| match e {
            HelloElement::VersionBitmap(words) => Some(
                words
                    .iter()
                    .enumerate()
                    .flat_map(|(i, w)| {
                        (0..32u32)
                            .filter(move |bit| w & (1 << bit) != 0)
                            .filter_map(move |bit| u8::try_from(i * 32 + bit as usize).ok())
                    })
                    .collect(),
            ),
            HelloElement::Unknown { .. } => None,
        })
    }
}

impl Wire for Hello {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let mut elements = Vec::new();
        while !r.is_empty() {
            elements.push(HelloElement::parse(r)?);
        }
        Ok(Hello { elements })
    }

    fn buffer_len(&self) -> usize {
        self.elements.iter().map(Wire::buffer_len).sum()
    }

    fn emit(&self, out: &mut BytesMut) {
        for e in &self.elements {
            e.emit(out);
        }
    }
}

// ---------------------------------------------------------------- ERROR

/// Defines `error_type` consts, per-type `error_code::<type>` consts and
/// the name table behind [`describe`], from one list so they cannot drift.
macro_rules! error_table {
    ($(
        $ty:ident = $tyv:expr, $tyname:literal, $module:ident, $prefix:literal {
            $($code:ident = $codev:expr),* $(,)?
        }
    )*) => {
        /// `ofp_error_type` values (spec 7.4.4).
        pub mod error_type {
            $(pub const $ty: u16 = $tyv;)*
            /// Experimenter error: `ErrorMsg::Experimenter`.
            pub const EXPERIMENTER: u16 = 0xffff;
        }

        /// Error codes, one module per error type (spec 7.4.4).
        pub mod error_code {
            $(
                #[doc = concat!("Codes of ", $tyname, ".")]
                pub mod $module {
                    $(pub const $code: u16 = $codev;)*
                }
            )*
        }

        /// (type, spec type name, code prefix, [(code, name suffix)]).
        const ERROR_NAMES: &[(u16, &str, &[(u16, &str)])] = &[
            $(($tyv, $tyname, &[$(($codev, concat!($prefix, stringify!($code)))),*]),)*
        ];
    };
}

error_table! {
    HELLO_FAILED = 0, "OFPET_HELLO_FAILED", hello_failed, "OFPHFC_" {
        INCOMPATIBLE = 0, EPERM = 1,
    }
    BAD_REQUEST = 1, "OFPET_BAD_REQUEST", bad_request, "OFPBRC_" {
        BAD_VERSION = 0, BAD_TYPE = 1, BAD_MULTIPART = 2, BAD_EXPERIMENTER = 3, BAD_EXP_TYPE = 4,
        EPERM = 5, BAD_LEN = 6, BUFFER_EMPTY = 7, BUFFER_UNKNOWN = 8, BAD_TABLE_ID = 9,
        IS_SLAVE = 10, BAD_PORT = 11, BAD_PACKET = 12, MULTIPART_BUFFER_OVERFLOW = 13,
    }
    BAD_ACTION = 2, "OFPET_BAD_ACTION", bad_action, "OFPBAC_" {
        BAD_TYPE = 0, BAD_LEN = 1, BAD_EXPERIMENTER = 2, BAD_EXP_TYPE = 3, BAD_OUT_PORT = 4,
        BAD_ARGUMENT = 5, EPERM = 6, TOO_MANY = 7, BAD_QUEUE = 8, BAD_OUT_GROUP = 9,
        MATCH_INCONSISTENT = 10, UNSUPPORTED_ORDER = 11, BAD_TAG = 12, BAD_SET_TYPE = 13,
        BAD_SET_LEN = 14, BAD_SET_ARGUMENT = 15,
    }
    BAD_INSTRUCTION = 3, "OFPET_BAD_INSTRUCTION", bad_instruction, "OFPBIC_" {
        UNKNOWN_INST = 0, UNSUP_INST = 1, BAD_TABLE_ID = 2, UNSUP_METADATA = 3,
        UNSUP_METADATA_MASK = 4, BAD_EXPERIMENTER = 5, BAD_EXP_TYPE = 6, BAD_LEN = 7, EPERM = 8,
    }
    BAD_MATCH = 4, "OFPET_BAD_MATCH", bad_match, "OFPBMC_" {
        BAD_TYPE = 0, BAD_LEN = 1, BAD_TAG = 2, BAD_DL_ADDR_MASK = 3, BAD_NW_ADDR_MASK = 4,
        BAD_WILDCARDS = 5, BAD_FIELD = 6, BAD_VALUE = 7, BAD_MASK = 8, BAD_PREREQ = 9,
        DUP_FIELD = 10, EPERM = 11,
    }
    FLOW_MOD_FAILED = 5, "OFPET_FLOW_MOD_FAILED", flow_mod_failed, "OFPFMFC_" {
        UNKNOWN = 0, TABLE_FULL = 1, BAD_TABLE_ID = 2, OVERLAP = 3, EPERM = 4, BAD_TIMEOUT = 5,
        BAD_COMMAND = 6, BAD_FLAGS = 7,
    }
    GROUP_MOD_FAILED = 6, "OFPET_GROUP_MOD_FAILED", group_mod_failed, "OFPGMFC_" {
        GROUP_EXISTS = 0, INVALID_GROUP = 1, WEIGHT_UNSUPPORTED = 2, OUT_OF_GROUPS = 3,
        OUT_OF_BUCKETS = 4, CHAINING_UNSUPPORTED = 5, WATCH_UNSUPPORTED = 6, LOOP = 7,
        UNKNOWN_GROUP = 8, CHAINED_GROUP = 9, BAD_TYPE = 10, BAD_COMMAND = 11, BAD_BUCKET = 12,
        BAD_WATCH = 13, EPERM = 14,
    }
    PORT_MOD_FAILED = 7, "OFPET_PORT_MOD_FAILED", port_mod_failed, "OFPPMFC_" {
        BAD_PORT = 0, BAD_HW_ADDR = 1, BAD_CONFIG = 2, BAD_ADVERTISE = 3, EPERM = 4,
    }
    TABLE_MOD_FAILED = 8, "OFPET_TABLE_MOD_FAILED", table_mod_failed, "OFPTMFC_" {
        BAD_TABLE = 0, BAD_CONFIG = 1, EPERM = 2,
    }
    QUEUE_OP_FAILED = 9, "OFPET_QUEUE_OP_FAILED", queue_op_failed, "OFPQOFC_" {
        BAD_PORT = 0, BAD_QUEUE = 1, EPERM = 2,
    }
    SWITCH_CONFIG_FAILED = 10, "OFPET_SWITCH_CONFIG_FAILED", switch_config_failed, "OFPSCFC_" {
        BAD_FLAGS = 0, BAD_LEN = 1, EPERM = 2,
    }
    ROLE_REQUEST_FAILED = 11, "OFPET_ROLE_REQUEST_FAILED", role_request_failed, "OFPRRFC_" {
        STALE = 0, UNSUP = 1, BAD_ROLE = 2,
    }
    METER_MOD_FAILED = 12, "OFPET_METER_MOD_FAILED", meter_mod_failed, "OFPMMFC_" {
        UNKNOWN = 0, METER_EXISTS = 1, INVALID_METER = 2, UNKNOWN_METER = 3, BAD_COMMAND = 4,
        BAD_FLAGS = 5, BAD_RATE = 6, BAD_BURST = 7, BAD_BAND = 8, BAD_BAND_VALUE = 9,
        OUT_OF_METERS = 10, OUT_OF_BANDS = 11,
    }
    TABLE_FEATURES_FAILED = 13, "OFPET_TABLE_FEATURES_FAILED", table_features_failed, "OFPTFFC_" {
        BAD_TABLE = 0, BAD_METADATA = 1, BAD_TYPE = 2, BAD_LEN = 3, BAD_ARGUMENT = 4, EPERM = 5,
    }
}

/// Spec name of an error, e.g. `"OFPET_BAD_MATCH/OFPBMC_BAD_PREREQ"`, for logs.
/// Unknown types or codes are shown numerically (`"OFPET_BAD_MATCH/99"`, `"0x1234/5"`).
pub fn describe(err_type: u16, code: u16) -> String {
    if err_type == error_type::EXPERIMENTER {
        return format!("OFPET_EXPERIMENTER/{code}");
    }
    match ERROR_NAMES.iter().find(|(t, _, _)| *t == err_type) {
        Some((_, tname, codes)) => match codes.iter().find(|(c, _)| *c == code) {
            Some((_, cname)) => format!("{tname}/{cname}"),
            None => format!("{tname}/{code}"),
        },
        None => format!("{err_type:#06x}/{code}"),
    }
}

/// OFPT_ERROR body. `data` usually holds (at least 64 bytes of) the request
/// that failed, or an ASCII string for HELLO_FAILED.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorMsg {
    Standard {
        err_type: u16,
        code: u16,
        data: Bytes,
    },
    Experimenter {
        exp_type: u16,
        experimenter: u32,
        data: Bytes,
    },
}

impl ErrorMsg {
    /// A standard error carrying (the start of) the offending request.
    pub fn new(err_type: u16, code: u16, data: impl Into<Bytes>) -> Self {
        ErrorMsg::Standard {
            err_type,
            code,
            data: data.into(),
        }
    }

    /// Spec name of this error (see [`describe`]).
    pub fn describe(&self) -> String {
        match self {
            ErrorMsg::Standard { err_type, code, .. } => describe(*err_type, *code),
            ErrorMsg::Experimenter {
                exp_type,
                experimenter,
                ..
            } => format!("OFPET_EXPERIMENTER/{experimenter:#010x}/{exp_type}"),
        }
    }

    /// The payload (failed request or text).
    pub fn data(&self) -> &Bytes {
        match self {
            ErrorMsg::Standard { data, .. } | ErrorMsg::Experimenter { data, .. } => data,
        }
    }
}

impl Wire for ErrorMsg {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let err_type = r.u16()?;
        let code = r.u16()?;
        if err_type == error_type::EXPERIMENTER {
            let experimenter = r.u32()?;
            return Ok(ErrorMsg::Experimenter {
                exp_type: code,
                experimenter,
                data: r.rest_owned(),
            });
        }
        Ok(ErrorMsg::Standard {
            err_type,
            code,
            data: r.rest_owned(),
        })
    }

    fn buffer_len(&self) -> usize {
        match self {
            ErrorMsg::Standard { data, .. } => 4 + data.len(),
            ErrorMsg::Experimenter { data, .. } => 8 + data.len(),
        }
    }

    fn emit(&self, out: &mut BytesMut) {
        match self {
            ErrorMsg::Standard {
                err_type,
                code,
                data,
            } => {
                out.put_u16(*err_type);
                out.put_u16(*code);
                out.put_slice(data);
            }
            ErrorMsg::Experimenter {
                exp_type,
                experimenter,
                data,
            } => {
                out.put_u16(error_type::EXPERIMENTER);
                out.put_u16(*exp_type);
                out.put_u32(*experimenter);
                out.put_slice(data);
            }
        }
    }
}

// ---------------------------------------------------------------- fixed-size bodies

/// Implements `Wire` for a struct of plain big-endian fields and padding.
macro_rules! fixed_wire {
    ($name:ident, $len:expr, |$r:ident| $parse:expr, |$s:ident, $out:ident| $emit:block) => {
        impl Wire for $name {
            fn parse($r: &mut Reader<'_>) -> Result<Self> {
                $parse
            }

            fn buffer_len(&self) -> usize {
                $len
            }

            fn emit(&self, $out: &mut BytesMut) {
                let $s = self;
                $emit
            }
        }
    };
}

/// OFPT_EXPERIMENTER body (also used for OFPT_EXPERIMENTER replies).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Experimenter {
    pub experimenter: u32,
    pub exp_type: u32,
    pub data: Bytes,
}

impl Wire for Experimenter {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Experimenter {
            experimenter: r.u32()?,
            exp_type: r.u32()?,
            data: r.rest_owned(),
        })
    }

    fn buffer_len(&self) -> usize {
        8 + self.data.len()
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.experimenter);
        out.put_u32(self.exp_type);
        out.put_slice(&self.data);
    }
}

/// `ofp_capabilities` bits of [`SwitchFeatures::capabilities`].
pub mod capabilities {
    pub const FLOW_STATS: u32 = 1 << 0;
    pub const TABLE_STATS: u32 = 1 << 1;
    pub const PORT_STATS: u32 = 1 << 2;
    pub const GROUP_STATS: u32 = 1 << 3;
    pub const IP_REASM: u32 = 1 << 5;
    pub const QUEUE_STATS: u32 = 1 << 6;
    pub const PORT_BLOCKED: u32 = 1 << 8;
}

/// OFPT_FEATURES_REPLY body (24 bytes; OF1.3 has no port list here).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SwitchFeatures {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    /// Non-zero on auxiliary connections.
    pub auxiliary_id: u8,
    pub capabilities: u32,
    pub reserved: u32,
}

fixed_wire!(
    SwitchFeatures,
    24,
    |r| {
        let datapath_id = r.u64()?;
        let n_buffers = r.u32()?;
        let n_tables = r.u8()?;
        let auxiliary_id = r.u8()?;
        r.skip(2)?;
        Ok(SwitchFeatures {
            datapath_id,
            n_buffers,
            n_tables,
            auxiliary_id,
            capabilities: r.u32()?,
            reserved: r.u32()?,
        })
    },
    |s, out| {
        out.put_u64(s.datapath_id);
        out.put_u32(s.n_buffers);
        out.put_u8(s.n_tables);
        out.put_u8(s.auxiliary_id);
        put_zeros(out, 2);
        out.put_u32(s.capabilities);
        out.put_u32(s.reserved);
    }
);

/// `ofp_config_flags` (IP fragment handling) for [`SwitchConfig::flags`].
pub mod config_flags {
    pub const FRAG_NORMAL: u16 = 0;
    pub const FRAG_DROP: u16 = 1;
    pub const FRAG_REASM: u16 = 2;
}

/// OFPT_GET_CONFIG_REPLY / OFPT_SET_CONFIG body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SwitchConfig {
    pub flags: u16,
    /// Bytes of a table-miss packet sent to the controller (`OFPCML_NO_BUFFER` = all).
    pub miss_send_len: u16,
}

fixed_wire!(
    SwitchConfig,
    4,
    |r| Ok(SwitchConfig {
        flags: r.u16()?,
        miss_send_len: r.u16()?,
    }),
    |s, out| {
        out.put_u16(s.flags);
        out.put_u16(s.miss_send_len);
    }
);

/// OFPT_TABLE_MOD body (8 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TableMod {
    pub table_id: u8,
    pub config: u32,
}

fixed_wire!(
    TableMod,
    8,
    |r| {
        let table_id = r.u8()?;
        r.skip(3)?;
        Ok(TableMod {
            table_id,
            config: r.u32()?,
        })
    },
    |s, out| {
        out.put_u8(s.table_id);
        put_zeros(out, 3);
        out.put_u32(s.config);
    }
);

/// `ofp_controller_role`.
pub mod controller_role {
    pub const NOCHANGE: u32 = 0;
    pub const EQUAL: u32 = 1;
    pub const MASTER: u32 = 2;
    pub const SLAVE: u32 = 3;
}

/// OFPT_ROLE_REQUEST / OFPT_ROLE_REPLY body (16 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RoleMsg {
    /// See [`controller_role`].
    pub role: u32,
    pub generation_id: u64,
}

fixed_wire!(
    RoleMsg,
    16,
    |r| {
        let role = r.u32()?;
        r.skip(4)?;
        Ok(RoleMsg {
            role,
            generation_id: r.u64()?,
        })
    },
    |s, out| {
        out.put_u32(s.role);
        put_zeros(out, 4);
        out.put_u64(s.generation_id);
    }
);

/// OFPT_GET_ASYNC_REPLY / OFPT_SET_ASYNC body (24 bytes). Index 0 is the
/// mask for master/equal roles, index 1 for slave.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsyncConfig {
    pub packet_in_mask: [u32; 2],
    pub port_status_mask: [u32; 2],
    pub flow_removed_mask: [u32; 2],
}

fixed_wire!(
    AsyncConfig,
    24,
    |r| Ok(AsyncConfig {
        packet_in_mask: [r.u32()?, r.u32()?],
        port_status_mask: [r.u32()?, r.u32()?],
        flow_removed_mask: [r.u32()?, r.u32()?],
    }),
    |s, out| {
        for v in s
            .packet_in_mask
            .iter()
            .chain(&s.port_status_mask)
            .chain(&s.flow_removed_mask)
        {
            out.put_u32(*v);
        }
    }
);

/// OFPT_QUEUE_GET_CONFIG_REQUEST body (8 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct QueueGetConfigRequest {
    /// Port to query, or `port_no::ANY` for all.
    pub port: u32,
}

fixed_wire!(
    QueueGetConfigRequest,
    8,
    |r| {
        let port = r.u32()?;
        r.skip(4)?;
        Ok(QueueGetConfigRequest { port })
    },
    |s, out| {
        out.put_u32(s.port);
        put_zeros(out, 4);
    }
);

// ---------------------------------------------------------------- queue config

/// `ofp_queue_properties` numbers.
pub mod queue_property {
    pub const MIN_RATE: u16 = 1;
    pub const MAX_RATE: u16 = 2;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// One queue property (spec 7.2.2): `| property: u16 | len: u16 | pad: 4 | body |`,
/// `len` at least 8. The spec does not require 8-byte multiples here and
/// real encoders (Ryu's test captures) emit experimenter properties of any
/// length, so none is enforced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QueueProperty {
    /// In 1/10 of a percent; > 1000 means disabled.
    MinRate(u16),
    MaxRate(u16),
    /// `data` = bytes after the experimenter id and its 4 pad bytes.
    Experimenter {
        experimenter: u32,
        data: Bytes,
    },
    /// Other properties, or known ones with unusual lengths: `data` = bytes
    /// after the 4-byte property/len header (including the 4 pad bytes).
    Unknown {
        property: u16,
        data: Bytes,
    },
}

impl Wire for QueueProperty {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (property, len, body) = r.tlv("queue property", 8, 1)?;
        let mut b = body.clone();
        b.skip(4)?;
        Ok(match property {
            queue_property::MIN_RATE if len == 16 => QueueProperty::MinRate(b.u16()?),
            queue_property::MAX_RATE if len == 16 => QueueProperty::MaxRate(b.u16()?),
            queue_property::EXPERIMENTER if len >= 16 => {
                let experimenter = b.u32()?;
                b.skip(4)?;
                QueueProperty::Experimenter {
                    experimenter,
                    data: b.rest_owned(),
                }
            }
            _ => QueueProperty::Unknown {
                property,
                data: body.clone().rest_owned(),
            },
        })
    }

    fn buffer_len(&self) -> usize {
        match self {
            QueueProperty::MinRate(_) | QueueProperty::MaxRate(_) => 16,
            QueueProperty::Experimenter { data, .. } => 16 + data.len(),
            QueueProperty::Unknown { data, .. } => 4 + data.len(),
        }
    }

    fn emit(&self, out: &mut BytesMut) {
        let property = match self {
            QueueProperty::MinRate(_) => queue_property::MIN_RATE,
            QueueProperty::MaxRate(_) => queue_property::MAX_RATE,
            QueueProperty::Experimenter { .. } => queue_property::EXPERIMENTER,
            QueueProperty::Unknown { property, .. } => *property,
        };
        out.put_u16(property);
        out.put_u16(len16(self.buffer_len()));
        match self {
            QueueProperty::MinRate(rate) | QueueProperty::MaxRate(rate) => {
                put_zeros(out, 4);
                out.put_u16(*rate);
                put_zeros(out, 6);
            }
            QueueProperty::Experimenter { experimenter, data } => {
                put_zeros(out, 4);
                out.put_u32(*experimenter);
                put_zeros(out, 4);
                out.put_slice(data);
            }
            QueueProperty::Unknown { data, .. } => out.put_slice(data),
        }
    }
}

/// `ofp_packet_queue`: `| queue_id: u32 | port: u32 | len: u16 | pad: 6 | properties |`
/// (`len` at least 16; like properties, not necessarily a multiple of 8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PacketQueue {
    pub queue_id: u32,
    pub port: u32,
    pub properties: Vec<QueueProperty>,
}

impl Wire for PacketQueue {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let len = usize::from(r.peek_u16(8)?);
        if len < 16 {
            return Err(DecodeError::BadLength {
                what: "packet queue",
                len,
            });
        }
        let mut q = r.sub(len, "packet queue")?;
        let queue_id = q.u32()?;
        let port = q.u32()?;
        q.skip(8)?;
        let mut properties = Vec::new();
        while !q.is_empty() {
            properties.push(QueueProperty::parse(&mut q)?);
        }
        Ok(PacketQueue {
            queue_id,
            port,
            properties,
        })
    }

    fn buffer_len(&self) -> usize {
        16 + self.properties.iter().map(Wire::buffer_len).sum::<usize>()
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.queue_id);
        out.put_u32(self.port);
        out.put_u16(len16(self.buffer_len()));
        put_zeros(out, 6);
        for p in &self.properties {
            p.emit(out);
        }
    }
}

/// OFPT_QUEUE_GET_CONFIG_REPLY body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueGetConfigReply {
    pub port: u32,
    pub queues: Vec<PacketQueue>,
}

impl Wire for QueueGetConfigReply {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let port = r.u32()?;
        r.skip(4)?;
        let mut queues = Vec::new();
        while !r.is_empty() {
            queues.push(PacketQueue::parse(r)?);
        }
        Ok(QueueGetConfigReply { port, queues })
    }

    fn buffer_len(&self) -> usize {
        8 + self.queues.iter().map(Wire::buffer_len).sum::<usize>()
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u32(self.port);
        put_zeros(out, 4);
        for q in &self.queues {
            q.emit(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<W: Wire + PartialEq + core::fmt::Debug>(bytes: &[u8], want: &W) {
        let mut r = Reader::new(bytes, "t");
        assert_eq!(&W::parse(&mut r).unwrap(), want);
        assert!(r.is_empty(), "left {} bytes", r.remaining());
        let mut out = BytesMut::new();
        want.emit(&mut out);
        assert_eq!(out.len(), want.buffer_len());
        assert_eq!(out.to_vec(), bytes);
    }

    #[test]
    fn hello_bitmap_fixture() {
        // Bitmap for versions 1 and 4: length 8 (one word), no padding needed.
        let bytes = [0, 1, 0, 8, 0, 0, 0, 0x12];
        let h = Hello::with_versions(&[1, 4]);
        round_trip(&bytes, &h);
        assert_eq!(h.versions(), Some(vec![1, 4]));
        assert_eq!(Hello::default().versions(), None);
    }

    #[test]
    fn hello_multiword_bitmap_is_padded() {
        let h = Hello::with_versions(&[4, 33]);
        let bytes = [0, 1, 0, 12, 0, 0, 0, 0x10, 0, 0, 0, 2, 0, 0, 0, 0];
        round_trip(&bytes, &h);
        assert_eq!(h.versions(), Some(vec![4, 33]));
    }

    #[test]
    fn hello_unknown_element_and_lenient_padding() {
        let bytes = [0, 9, 0, 6, 0xaa, 0xbb, 0, 0, 0, 1, 0, 8, 0, 0, 0, 0x10];
        let h = Hello {
            elements: vec![
                HelloElement::Unknown {
                    elem_type: 9,
                    data: Bytes::from_static(&[0xaa, 0xbb]),
                },
                HelloElement::VersionBitmap(vec![0x10]),
            ],
        };
        round_trip(&bytes, &h);
        assert_eq!(h.versions(), Some(vec![4]));
        // A peer that omits the last element's padding is still understood.
        let short = [0, 1, 0, 12, 0, 0, 0, 0x10, 0, 0, 0, 0];
        let got = Hello::parse(&mut Reader::new(&short, "t")).unwrap();
        assert_eq!(got.versions(), Some(vec![4]));
    }

    #[test]
    fn hello_errors() {
        for bad in [
            &[0u8, 1, 0, 0][..],
            &[0, 1, 0, 2],
            &[0, 1, 0, 12, 0, 0, 0, 0x10],
            &[0, 1],
        ] {
            assert!(Hello::parse(&mut Reader::new(bad, "t")).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn error_fixtures_and_names() {
        let bytes = [0, 4, 0, 9, 0xca, 0xfe];
        let e = ErrorMsg::new(
            error_type::BAD_MATCH,
            error_code::bad_match::BAD_PREREQ,
            Bytes::from_static(&[0xca, 0xfe]),
        );
        round_trip(&bytes, &e);
        assert_eq!(e.describe(), "OFPET_BAD_MATCH/OFPBMC_BAD_PREREQ");
        assert_eq!(describe(0, 0), "OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE");
        assert_eq!(
            describe(
                error_type::TABLE_FEATURES_FAILED,
                error_code::table_features_failed::EPERM
            ),
            "OFPET_TABLE_FEATURES_FAILED/OFPTFFC_EPERM"
        );
        assert_eq!(
            describe(1, 13),
            "OFPET_BAD_REQUEST/OFPBRC_MULTIPART_BUFFER_OVERFLOW"
        );
        assert_eq!(describe(4, 99), "OFPET_BAD_MATCH/99");
        assert_eq!(describe(0x1234, 5), "0x1234/5");

        let bytes = [0xff, 0xff, 0, 7, 0, 0, 0x23, 0x20, 1, 2];
        let e = ErrorMsg::Experimenter {
            exp_type: 7,
            experimenter: 0x2320,
            data: Bytes::from_static(&[1, 2]),
        };
        round_trip(&bytes, &e);
        assert!(ErrorMsg::parse(&mut Reader::new(&[0, 1, 0], "t")).is_err());
        assert!(ErrorMsg::parse(&mut Reader::new(&[0xff, 0xff, 0, 1, 0], "t")).is_err());
    }

    #[test]
    fn every_error_type_has_names() {
        for t in 0..=13u16 {
            assert!(!describe(t, 0).contains("/0"), "{}", describe(t, 0));
        }
    }

    #[test]
    fn fixed_fixtures() {
        round_trip(
            &[
                0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 254, 0, 0, 0, 0, 0, 0, 0x4f, 0, 0, 0, 0,
            ],
            &SwitchFeatures {
                datapath_id: 1,
                n_buffers: 256,
                n_tables: 254,
                auxiliary_id: 0,
                capabilities: 0x4f,
                reserved: 0,
            },
        );
        round_trip(
            &[0, 0, 0xff, 0xff],
            &SwitchConfig {
                flags: 0,
                miss_send_len: 0xffff,
            },
        );
        round_trip(
            &[3, 0, 0, 0, 0, 0, 0, 3],
            &TableMod {
                table_id: 3,
                config: 3,
            },
        );
        round_trip(
            &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
            &RoleMsg {
                role: controller_role::MASTER,
                generation_id: 9,
            },
        );
        let mut b = Vec::new();
        for v in 1u32..=6 {
            b.extend_from_slice(&v.to_be_bytes());
        }
        round_trip(
            &b,
            &AsyncConfig {
                packet_in_mask: [1, 2],
                port_status_mask: [3, 4],
                flow_removed_mask: [5, 6],
            },
        );
        round_trip(
            &[0, 0, 0, 1, 0, 0, 0, 0],
            &QueueGetConfigRequest { port: 1 },
        );
        round_trip(
            &[0, 0, 0x23, 0x20, 0, 0, 0, 1, 9],
            &Experimenter {
                experimenter: 0x2320,
                exp_type: 1,
                data: Bytes::from_static(&[9]),
            },
        );
        assert!(SwitchFeatures::parse(&mut Reader::new(&[0; 23], "t")).is_err());
        assert!(RoleMsg::parse(&mut Reader::new(&[0; 15], "t")).is_err());
    }

    #[test]
    fn queue_config_reply_fixture() {
        let bytes = [
            0, 0, 0, 1, 0, 0, 0, 0, // port 1
            0, 0, 0, 7, 0, 0, 0, 1, 0, 48, 0, 0, 0, 0, 0, 0, // queue 7, len 48
            0, 1, 0, 16, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, // min rate 100
            0, 2, 0, 16, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 0, 0, // max rate 1000
        ];
        let want = QueueGetConfigReply {
            port: 1,
            queues: vec![PacketQueue {
                queue_id: 7,
                port: 1,
                properties: vec![QueueProperty::MinRate(100), QueueProperty::MaxRate(1000)],
            }],
        };
        round_trip(&bytes, &want);
        // Zero-length property.
        let mut bad = bytes.to_vec();
        bad[26..28].copy_from_slice(&[0, 0]);
        assert!(QueueGetConfigReply::parse(&mut Reader::new(&bad, "t")).is_err());
        // Queue length that cuts a property / below the queue header.
        let mut bad = bytes.to_vec();
        bad[17] = 44;
        assert!(QueueGetConfigReply::parse(&mut Reader::new(&bad, "t")).is_err());
        bad[17] = 8;
        assert!(QueueGetConfigReply::parse(&mut Reader::new(&bad, "t")).is_err());
    }

    #[test]
    fn queue_experimenter_property() {
        let bytes = [
            0xff, 0xff, 0, 24, 0, 0, 0, 0, 0, 0, 0x23, 0x20, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        round_trip(
            &bytes,
            &QueueProperty::Experimenter {
                experimenter: 0x2320,
                data: Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8]),
            },
        );
    }
}
