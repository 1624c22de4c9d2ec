//! Instructions (spec 7.2.4): `| type: u16 | len: u16 | body |`, `len` a
//! non-zero multiple of 8. Known types with a non-standard length are kept
//! as [`Instruction::Unknown`] so they re-emit byte for byte.

use bytes::{BufMut, Bytes, BytesMut};

use crate::action::{actions_len, emit_actions, parse_actions, Action};
use crate::error::Result;
use crate::wire::{len16, put_zeros, Reader, Wire};

/// Instruction type numbers (`enum ofp_instruction_type`).
pub mod instruction_type {
    pub const GOTO_TABLE: u16 = 1;
    pub const WRITE_METADATA: u16 = 2;
    pub const WRITE_ACTIONS: u16 = 3;
    pub const APPLY_ACTIONS: u16 = 4;
    pub const CLEAR_ACTIONS: u16 = 5;
    pub const METER: u16 = 6;
    pub const EXPERIMENTER: u16 = 0xffff;
}

/// One flow instruction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Instruction {
    GotoTable(u8),
    WriteMetadata {
        metadata: u64,
        mask: u64,
    },
    WriteActions(Vec<Action>),
    ApplyActions(Vec<Action>),
    ClearActions,
    Meter(u32),
    /// `data` = everything after the experimenter id (`8 + data.len()` a multiple of 8).
    Experimenter {
        experimenter: u32,
        data: Bytes,
    },
    /// Other types, or a known type with an unexpected length: `data` = bytes
    /// after the 4-byte type/len header.
    Unknown {
        instruction_type: u16,
        data: Bytes,
    },
}

impl Instruction {
    /// The wire type number.
    pub fn instruction_type(&self) -> u16 {
        use instruction_type::*;
        match self {
            Instruction::GotoTable(_) => GOTO_TABLE,
            Instruction::WriteMetadata { .. } => WRITE_METADATA,
            Instruction::WriteActions(_) => WRITE_ACTIONS,
            Instruction::ApplyActions(_) => APPLY_ACTIONS,
            Instruction::ClearActions => CLEAR_ACTIONS,
            Instruction::Meter(_) => METER,
            Instruction::Experimenter { .. } => EXPERIMENTER,
            Instruction::Unknown {
                instruction_type, ..
            } => *instruction_type,
        }
    }

    fn typed(ty: u16, len: usize, body: &mut Reader<'_>) -> Result<Option<Instruction>> {
        use instruction_type::*;
        let i = match ty {
            GOTO_TABLE if len == 8 => Instruction::GotoTable(body.u8()?),
            WRITE_METADATA if len == 24 => {
                body.skip(4)?;
                let metadata = body.u64()?;
                let mask = body.u64()?;
                Instruction::WriteMetadata { metadata, mask }
            }
            WRITE_ACTIONS | APPLY_ACTIONS => {
                body.skip(4)?;
                let n = body.remaining();
                let actions = parse_actions(body, n)?;
                if ty == WRITE_ACTIONS {
                    Instruction::WriteActions(actions)
                } else {
                    Instruction::ApplyActions(actions)
                }
            }
            CLEAR_ACTIONS if len == 8 => Instruction::ClearActions,
            METER if len == 8 => Instruction::Meter(body.u32()?),
            EXPERIMENTER => {
                let experimenter = body.u32()?;
                Instruction::Experimenter {
                    experimenter,
                    data: body.rest_owned(),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(i))
    }
}

impl Wire for Instruction {
    fn parse(r: &mut Reader<'_>) -> Result<Self> {
        let (ty, len, body) = r.tlv("instruction", 8, 8)?;
        match Instruction::typed(ty, len, &mut body.clone())? {
            Some(i) => Ok(i),
            None => Ok(Instruction::Unknown {
                instruction_type: ty,
                data: body.clone().rest_owned(),
            }),
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Instruction::WriteMetadata { .. } => 24,
            Instruction::WriteActions(a) | Instruction::ApplyActions(a) => 8 + actions_len(a),
            Instruction::Experimenter { data, .. } => 8 + data.len(),
            Instruction::Unknown { data, .. } => 4 + data.len(),
            _ => 8,
        }
    }

    fn emit(&self, out: &mut BytesMut) {
        out.put_u16(self.instruction_type());
        out.put_u16(len16(self.buffer_len()));
        match self {
            Instruction::GotoTable(t) => {
                out.put_u8(*t);
                put_zeros(out, 3);
            }
            Instruction::WriteMetadata { metadata, mask } => {
                put_zeros(out, 4);
                out.put_u64(*metadata);
                out.put_u64(*mask);
            }
            Instruction::WriteActions(a) | Instruction::ApplyActions(a) => {
                put_zeros(out, 4);
                emit_actions(a, out);
            }
            Instruction::ClearActions => put_zeros(out, 4),
            Instruction::Meter(id) => out.put_u32(*id),
            Instruction::Experimenter { experimenter, data } => {
                out.put_u32(*experimenter);
                out.put_slice(data);
            }
            Instruction::Unknown { data, .. } => out.put_slice(data),
        }
    }
}

/// Parses an instruction list occupying exactly `len` bytes of `r`.
pub fn parse_instructions(r: &mut Reader<'_>, len: usize) -> Result<Vec<Instruction>> {
    let mut sub = r.sub(len, "instruction list")?;
    let mut out = Vec::new();
    while !sub.is_empty() {
        out.push(Instruction::parse(&mut sub)?);
    }
    Ok(out)
}

/// Encoded length of an instruction list.
pub fn instructions_len(instructions: &[Instruction]) -> usize {
    instructions.iter().map(Wire::buffer_len).sum()
}

/// Appends an instruction list.
pub fn emit_instructions(instructions: &[Instruction], out: &mut BytesMut) {
    for i in instructions {
        i.emit(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::DecodeError;
    use crate::strategies::arb_instruction;
    use proptest::prelude::*;

    fn emit(i: &Instruction) -> Vec<u8> {
        let mut out = BytesMut::new();
        i.emit(&mut out);
        assert_eq!(out.len(), i.buffer_len());
        out.to_vec()
    }

    fn parse(b: &[u8]) -> Result<Instruction> {
        let mut r = Reader::new(b, "test");
        let i = Instruction::parse(&mut r)?;
        r.finish()?;
        Ok(i)
    }

    #[test]
    fn fixtures() {
        let cases: [(&[u8], Instruction); 4] = [
            (&[0, 1, 0, 8, 3, 0, 0, 0], Instruction::GotoTable(3)),
            (&[0, 5, 0, 8, 0, 0, 0, 0], Instruction::ClearActions),
            (&[0, 6, 0, 8, 0, 0, 0, 7], Instruction::Meter(7)),
            (
                &[
                    0, 2, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0xff,
                ],
                Instruction::WriteMetadata {
                    metadata: 0x10,
                    mask: 0xff,
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(bytes).unwrap(), want);
            assert_eq!(emit(&want), bytes);
        }
    }

    #[test]
    fn apply_actions_fixture() {
        let bytes = [
            0, 4, 0, 24, 0, 0, 0, 0, // apply-actions header, len 24
            0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, // output:2 max_len 0
        ];
        let i = parse(&bytes).unwrap();
        assert_eq!(
            i,
            Instruction::ApplyActions(vec![Action::Output {
                port: 2,
                max_len: 0
            }])
        );
        assert_eq!(emit(&i), bytes);
        // Empty write-actions is legal.
        let empty = [0, 3, 0, 8, 0, 0, 0, 0];
        assert_eq!(parse(&empty).unwrap(), Instruction::WriteActions(vec![]));
    }

    #[test]
    fn instruction_errors() {
        assert!(matches!(
            parse(&[0, 1, 0, 0]),
            Err(DecodeError::BadLength { .. })
        ));
        assert!(matches!(
            parse(&[0, 1, 0, 4, 0, 0, 0, 0]),
            Err(DecodeError::BadLength { .. })
        ));
        assert!(matches!(
            parse(&[0, 4, 0, 16, 0, 0, 0, 0]),
            Err(DecodeError::Truncated { .. })
        ));
        // An action inside claims more than the instruction holds.
        let bytes = [0, 4, 0, 16, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 2];
        assert!(parse(&bytes).is_err());
    }

    #[test]
    fn unusual_length_kept_raw() {
        let bytes = [0, 1, 0, 16, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let i = parse(&bytes).unwrap();
        assert!(matches!(
            i,
            Instruction::Unknown {
                instruction_type: 1,
                ..
            }
        ));
        assert_eq!(emit(&i), bytes);
    }

    proptest! {
        #[test]
        fn instruction_round_trip(i in arb_instruction()) {
            let bytes = emit(&i);
            prop_assert_eq!(parse(&bytes).unwrap(), i);
        }

        #[test]
        fn instruction_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes, "fuzz");
            let _ = parse_instructions(&mut r, bytes.len());
        }
    }
}
