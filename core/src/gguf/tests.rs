//! Unit tests on GGUF files built byte by byte by [`Builder`], independently of the parser
//! (the builder and its encoders are shared with the tokenizer's and the model loader's tests).

use std::string::ToString;
use std::vec::Vec;

use super::*;

// GGUF value type ids, as the specification numbers them.
const U8: u32 = 0;
const I8: u32 = 1;
pub(crate) const U16: u32 = 2;
const I16: u32 = 3;
pub(crate) const U32: u32 = 4;
pub(crate) const I32: u32 = 5;
pub(crate) const F32: u32 = 6;
pub(crate) const BOOL: u32 = 7;
pub(crate) const STRING: u32 = 8;
pub(crate) const ARRAY: u32 = 9;
pub(crate) const U64: u32 = 10;
const I64: u32 = 11;
pub(crate) const F64: u32 = 12;

// ggml type ids used below.
pub(crate) const T_F32: u32 = 0;
pub(crate) const T_Q8_0: u32 = 8;
const T_Q4_K: u32 = 12;
const T_IQ2_XXS: u32 = 16;

/// A GGUF string: u64 length, then the bytes.
pub(crate) fn string(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// An array value: element type, count, then the encoded elements.
pub(crate) fn array(elem: u32, count: u64, elems: &[u8]) -> Vec<u8> {
    let mut out = elem.to_le_bytes().to_vec();
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(elems);
    out
}

/// Writes a GGUF file: header, metadata, tensor infos, zero padding to `alignment`, data.
#[derive(Clone)]
pub(crate) struct Builder {
    magic: [u8; 4],
    version: u32,
    metadata: Vec<u8>,
    metadata_count: u64,
    infos: Vec<u8>,
    tensor_count: u64,
    data: Vec<u8>,
    alignment: usize,
}

impl Builder {
    pub(crate) fn new() -> Builder {
        Builder {
            magic: *b"GGUF",
            version: 3,
            metadata: Vec::new(),
            metadata_count: 0,
            infos: Vec::new(),
            tensor_count: 0,
            data: Vec::new(),
            alignment: 32,
        }
    }

    /// A metadata entry with an already encoded value.
    pub(crate) fn kv(mut self, key: &[u8], type_id: u32, value: &[u8]) -> Builder {
        self.metadata.extend(string(key));
        self.metadata.extend(type_id.to_le_bytes());
        self.metadata.extend_from_slice(value);
        self.metadata_count += 1;
        self
    }

    /// `general.alignment` as a u32, also used for the padding.
    pub(crate) fn alignment(mut self, alignment: u32) -> Builder {
        self.alignment = alignment as usize;
        self.kv(b"general.alignment", U32, &alignment.to_le_bytes())
    }

    /// A tensor info with explicit dims, type and offset (no data).
    fn info(mut self, name: &[u8], dims: &[u64], type_id: u32, offset: u64) -> Builder {
        self.infos.extend(string(name));
        self.infos.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.infos.extend(d.to_le_bytes());
        }
        self.infos.extend(type_id.to_le_bytes());
        self.infos.extend(offset.to_le_bytes());
        self.tensor_count += 1;
        self
    }

    /// A tensor whose `bytes` go at the next aligned offset of the data section.
    pub(crate) fn tensor(
        mut self,
        name: &str,
        dims: &[u64],
        type_id: u32,
        bytes: &[u8],
    ) -> Builder {
        let offset = self.data.len().next_multiple_of(self.alignment);
        self.data.resize(offset, 0);
        self.data.extend_from_slice(bytes);
        self.info(name.as_bytes(), dims, type_id, offset as u64)
    }

    /// An f32 tensor holding `values`.
    fn f32_tensor(self, name: &str, dims: &[u64], values: &[f32]) -> Builder {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, T_F32, &bytes)
    }

    pub(crate) fn build(&self) -> Vec<u8> {
        let mut out = self.magic.to_vec();
        out.extend(self.version.to_le_bytes());
        out.extend(self.tensor_count.to_le_bytes());
        out.extend(self.metadata_count.to_le_bytes());
        out.extend_from_slice(&self.metadata);
        out.extend_from_slice(&self.infos);
        if !self.data.is_empty() {
            out.resize(out.len().next_multiple_of(self.alignment), 0);
            out.extend_from_slice(&self.data);
        }
        out
    }
}

fn parse_err(bytes: &[u8]) -> Error {
    Gguf::parse(bytes).expect_err("the file must be refused")
}

/// The offset in `file` where `needle` first occurs.
fn find(file: &[u8], needle: &[u8]) -> usize {
    file.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in file")
}

#[test]
fn empty_file_has_header_only() {
    let file = Builder::new().build();
    assert_eq!(file.len(), 24);
    let g = Gguf::parse(&file).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.alignment(), 32);
    assert_eq!((g.metadata_len(), g.tensor_count()), (0, 0));
    assert_eq!(g.data_offset(), 32);
    assert!(g.data().is_empty());
    // An empty tensor in a file that ends before its data section: a view at the file's end.
    let file = Builder::new().info(b"e", &[0], T_F32, 0).build();
    let e = Gguf::parse(&file).unwrap().tensor("e").unwrap();
    assert_eq!(e.data.as_ptr(), file[file.len()..].as_ptr());
    assert_eq!(g.metadata("general.architecture"), None);
    assert_eq!(g.tensor("token_embd.weight"), None);
    assert!(is_gguf(&file) && !is_gguf(b"GGU") && !is_gguf(b"ak42...."));
    let mut v2 = Builder::new();
    v2.version = 2;
    assert_eq!(Gguf::parse(&v2.build()).unwrap().version(), 2);
}

#[test]
fn every_scalar_value_type() {
    let file = Builder::new()
        .kv(b"u8", U8, &[200])
        .kv(b"i8", I8, &(-5i8).to_le_bytes())
        .kv(b"u16", U16, &60000u16.to_le_bytes())
        .kv(b"i16", I16, &(-30000i16).to_le_bytes())
        .kv(b"u32", U32, &4_000_000_000u32.to_le_bytes())
        .kv(b"i32", I32, &(-2_000_000_000i32).to_le_bytes())
        .kv(b"f32", F32, &1.5f32.to_le_bytes())
        .kv(b"true", BOOL, &[1])
        .kv(b"false", BOOL, &[0])
        .kv(b"string", STRING, &string("llama ▁".as_bytes()))
        .kv(b"bytes", STRING, &string(&[0xff, 0x41]))
        .kv(b"u64", U64, &(1u64 << 40).to_le_bytes())
        .kv(b"i64", I64, &(-(1i64 << 40)).to_le_bytes())
        .kv(b"f64", F64, &0.1f64.to_le_bytes())
        .build();
    let g = Gguf::parse(&file).unwrap();
    let get = |k: &str| g.metadata(k).unwrap();
    assert_eq!(get("u8"), Value::U8(200));
    assert_eq!(get("i8"), Value::I8(-5));
    assert_eq!(get("u16"), Value::U16(60000));
    assert_eq!(get("i16"), Value::I16(-30000));
    assert_eq!(get("u32"), Value::U32(4_000_000_000));
    assert_eq!(get("i32"), Value::I32(-2_000_000_000));
    assert_eq!(get("f32"), Value::F32(1.5));
    assert_eq!(get("true"), Value::Bool(true));
    assert_eq!(get("false"), Value::Bool(false));
    assert_eq!(get("string"), Value::String("llama ▁".as_bytes()));
    assert_eq!(get("u64"), Value::U64(1 << 40));
    assert_eq!(get("i64"), Value::I64(-(1 << 40)));
    assert_eq!(get("f64"), Value::F64(0.1));
    assert_eq!(g.metadata_len(), 14);
    let types: Vec<u32> = g
        .metadata_entries()
        .map(|(_, v)| v.value_type().id())
        .collect();
    assert_eq!(types, [0, 1, 2, 3, 4, 5, 6, 7, 7, 8, 8, 10, 11, 12]);

    // Integer accessors take any integer type that holds the value.
    assert_eq!(get("u8").as_u32(), Some(200));
    assert_eq!(get("u8").as_i32(), Some(200));
    assert_eq!(get("i8").as_u32(), None);
    assert_eq!(get("i8").as_i64(), Some(-5));
    assert_eq!(get("u32").as_u32(), Some(4_000_000_000));
    assert_eq!(get("u32").as_i32(), None);
    assert_eq!(get("u64").as_u32(), None);
    assert_eq!(get("u64").as_u64(), Some(1 << 40));
    assert_eq!(get("i64").as_u64(), None);
    assert_eq!(get("u16").as_usize(), Some(60000));
    assert_eq!(get("f32").as_u32(), None);
    // Floats: `as_f32` only for f32, `as_f64` for both.
    assert_eq!(get("f32").as_f32(), Some(1.5));
    assert_eq!(get("f64").as_f32(), None);
    assert_eq!(get("f32").as_f64(), Some(1.5));
    assert_eq!(get("f64").as_f64(), Some(0.1));
    assert_eq!(get("u32").as_f32(), None);
    // Strings, booleans.
    assert_eq!(get("string").as_str(), Some("llama ▁"));
    assert_eq!(get("bytes").as_bytes(), Some(&[0xff, 0x41][..]));
    assert_eq!(get("bytes").as_str(), None);
    assert_eq!(get("u8").as_str(), None);
    assert_eq!(get("true").as_bool(), Some(true));
    assert_eq!(get("u8").as_bool(), None);
    assert_eq!(get("string").as_array(), None);
}

#[test]
fn numeric_and_boolean_arrays() {
    let u16s: Vec<u8> = [1u16, 2, 65535]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let i32s: Vec<u8> = [-1i32, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    let f32s: Vec<u8> = [0.5f32, -2.0, 3.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f64s: Vec<u8> = [1e300f64].iter().flat_map(|v| v.to_le_bytes()).collect();
    let file = Builder::new()
        .kv(b"u16s", ARRAY, &array(U16, 3, &u16s))
        .kv(b"i32s", ARRAY, &array(I32, 2, &i32s))
        .kv(b"f32s", ARRAY, &array(F32, 3, &f32s))
        .kv(b"bools", ARRAY, &array(BOOL, 3, &[1, 0, 1]))
        .kv(b"f64s", ARRAY, &array(F64, 1, &f64s))
        .kv(b"empty", ARRAY, &array(U64, 0, &[]))
        .kv(b"after", U8, &[9])
        .build();
    let g = Gguf::parse(&file).unwrap();
    let arr = |k: &str| g.metadata(k).unwrap().as_array().unwrap();

    let a = arr("u16s");
    assert_eq!(
        (a.elem_type(), a.len(), a.is_empty()),
        (ValueType::U16, 3, false)
    );
    assert_eq!(a.get(0), Some(Value::U16(1)));
    assert_eq!(a.get(2), Some(Value::U16(65535)));
    assert_eq!(a.get(3), None);
    assert_eq!(a.get(usize::MAX), None);
    assert_eq!(a.iter().len(), 3);
    assert_eq!(a.f32s().map(|i| i.count()), None);

    assert_eq!(arr("i32s").i32s().unwrap().collect::<Vec<_>>(), [-1, 7]);
    assert_eq!(arr("i32s").get(1).and_then(|v| v.as_u32()), Some(7));
    assert_eq!(
        arr("f32s").f32s().unwrap().collect::<Vec<_>>(),
        [0.5, -2.0, 3.25]
    );
    assert!(arr("f32s").strings().is_none());
    let bools: Vec<_> = arr("bools").iter().map(|v| v.as_bool().unwrap()).collect();
    assert_eq!(bools, [true, false, true]);
    assert_eq!(arr("f64s").get(0), Some(Value::F64(1e300)));
    assert!(arr("empty").is_empty());
    assert_eq!(arr("empty").iter().next(), None);
    assert_eq!(arr("empty").elem_type(), ValueType::U64);
    // The entry after the arrays is found: each array was skipped by exactly its size.
    assert_eq!(g.metadata("after"), Some(Value::U8(9)));
}

#[test]
fn string_arrays_decode_lazily() {
    let pieces: [&[u8]; 4] = [b"<unk>", "▁the".as_bytes(), b"", b"<0x0A>"];
    let elems: Vec<u8> = pieces.iter().flat_map(|p| string(p)).collect();
    let file = Builder::new()
        .kv(b"tokenizer.ggml.tokens", ARRAY, &array(STRING, 4, &elems))
        .kv(b"n", U32, &4u32.to_le_bytes())
        .build();
    let g = Gguf::parse(&file).unwrap();
    let tokens = g
        .metadata("tokenizer.ggml.tokens")
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!((tokens.elem_type(), tokens.len()), (ValueType::String, 4));
    assert_eq!(tokens.strings().unwrap().collect::<Vec<_>>(), pieces);
    assert_eq!(tokens.get(1).and_then(|v| v.as_str()), Some("▁the"));
    assert_eq!(tokens.get(3), Some(Value::String(b"<0x0A>")));
    assert_eq!(tokens.get(4), None);
    assert_eq!(tokens.into_iter().count(), 4);
    assert!(tokens.i32s().is_none());
    assert_eq!(g.metadata("n").and_then(|v| v.as_u32()), Some(4));
}

#[test]
fn tensors_are_views_in_any_order() {
    let a: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let b = [9.0f32, 10.0, 11.0];
    // `b`'s info comes before `a`'s but its data after; a zero-size tensor shares no bytes.
    let reordered = {
        let mut builder = Builder::new().kv(b"general.architecture", STRING, &string(b"llama"));
        builder.data = vec![0; 64 + 4];
        for (i, v) in a.iter().enumerate() {
            builder.data[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        for (i, v) in b.iter().enumerate() {
            builder.data[32 + 4 * i..36 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        builder.data[64..].copy_from_slice(&42f32.to_le_bytes());
        builder
            .info(b"b", &[3], T_F32, 32)
            .info(b"a", &[4, 2], T_F32, 0)
            .info(b"empty", &[0, 5], T_F32, 0)
            .info(b"scalar", &[], T_F32, 64)
            .build()
    };
    let g = Gguf::parse(&reordered).unwrap();
    assert_eq!(g.tensor_count(), 4);
    let names: Vec<&str> = g.tensors().map(|t| t.name).collect();
    assert_eq!(names, ["b", "a", "empty", "scalar"]);
    let ta = g.tensor("a").unwrap();
    assert_eq!(
        (ta.dims(), ta.element_count(), ta.offset()),
        (&[4, 2][..], 8, 0)
    );
    assert_eq!(ta.ggml_type, GgmlType::F32);
    let values: Vec<f32> = ta
        .data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(values, a);
    let tb = g.tensor("b").unwrap();
    assert_eq!((tb.offset(), tb.data.len()), (32, 12));
    assert_eq!(tb.data, &g.data()[32..44]);
    let empty = g.tensor("empty").unwrap();
    assert_eq!((empty.element_count(), empty.data.len()), (0, 0));
    let scalar = g.tensor("scalar").unwrap();
    assert_eq!((scalar.dims(), scalar.element_count()), (&[][..], 1));
    assert_eq!(scalar.data, 42f32.to_le_bytes());
    assert_eq!(g.tensor("c"), None);
    // The data section starts at the first multiple of 32 after the infos.
    assert_eq!(g.data_offset() % 32, 0);
    assert_eq!(g.data_offset(), reordered.len() - 68);
    assert_eq!(
        g.metadata("general.architecture").unwrap().as_str(),
        Some("llama")
    );
}

#[test]
fn block_sizes_of_every_supported_type() {
    // (id, values per block, bytes per block), from ggml's `ggml-common.h` block structs.
    let table: [(u32, u64, usize); 20] = [
        (0, 1, 4),
        (1, 1, 2),
        (2, 32, 18),
        (3, 32, 20),
        (6, 32, 22),
        (7, 32, 24),
        (8, 32, 34),
        (9, 32, 36),
        (10, 256, 84),
        (11, 256, 110),
        (12, 256, 144),
        (13, 256, 176),
        (14, 256, 210),
        (15, 256, 292),
        (24, 1, 1),
        (25, 1, 2),
        (26, 1, 4),
        (27, 1, 8),
        (28, 1, 8),
        (30, 1, 2),
    ];
    for (id, block, bytes) in table {
        // Two blocks a row, three rows: exactly 6 blocks, ending at the end of the file.
        let data = vec![7u8; 6 * bytes];
        let file = Builder::new()
            .tensor("t", &[2 * block, 3], id, &data)
            .build();
        let g = Gguf::parse(&file).unwrap_or_else(|e| panic!("type {id}: {e}"));
        let t = g.tensor("t").unwrap();
        assert_eq!(t.ggml_type.id(), id);
        assert_eq!(t.data.len(), 6 * bytes, "{}", t.ggml_type);
        assert_eq!(GgmlType::from_id(id).unwrap().block().unwrap().bytes, bytes);
        // One byte short: out of bounds.
        let short = &file[..file.len() - 1];
        assert!(
            matches!(parse_err(short), Error::GgufTensorOutOfBounds { size, .. } if size == 6 * bytes),
            "type {id}"
        );
        // Rows not a whole number of blocks.
        if block > 1 {
            let file = Builder::new()
                .tensor("t", &[block + 1, 3], id, &data)
                .build();
            assert_eq!(
                parse_err(&file),
                Error::GgufShapeNotBlockMultiple {
                    tensor: GgufName::new("t"),
                    ggml_type: GgmlType::from_id(id).unwrap(),
                    row: block as usize + 1
                }
            );
        }
    }
    for (row, entry) in tensor::TYPES.iter().enumerate() {
        let t = entry.ggml_type;
        assert_eq!(
            t as usize, row,
            "{} is declared out of the table's order",
            entry.name
        );
        assert_eq!(GgmlType::from_id(entry.id), Some(t));
        assert_eq!((t.id(), t.name()), (entry.id, entry.name));
    }
    assert_eq!(GgmlType::Q4_K.name(), "Q4_K");
    assert_eq!(GgmlType::from_id(39), Some(GgmlType::MXFP4));
    assert_eq!(GgmlType::from_id(4), None, "Q4_2 was removed");
    assert_eq!(GgmlType::IQ4_XS.block(), None);
}

#[test]
fn alignment_from_metadata() {
    let file = Builder::new()
        .alignment(64)
        .f32_tensor("a", &[3], &[1.0, 2.0, 3.0])
        .f32_tensor("b", &[2], &[4.0, 5.0])
        .build();
    let g = Gguf::parse(&file).unwrap();
    assert_eq!(g.alignment(), 64);
    assert_eq!(g.data_offset() % 64, 0);
    assert_eq!(g.tensor("b").unwrap().offset(), 64);
    assert_eq!(&g.tensor("b").unwrap().data[..4], 4f32.to_le_bytes());
    // Alignment 1 allows any offset.
    let file = Builder::new()
        .alignment(1)
        .tensor("a", &[3], 0, &[0; 12])
        .tensor("b", &[1], 0, &[0; 4])
        .build();
    assert_eq!(
        Gguf::parse(&file).unwrap().tensor("b").unwrap().offset(),
        12
    );
}

#[test]
fn bad_alignments() {
    for bad in [0u32, 3, 48, u32::MAX] {
        let file = Builder::new()
            .kv(b"general.alignment", U32, &bad.to_le_bytes())
            .build();
        assert_eq!(parse_err(&file), Error::GgufBadAlignment { value: bad });
    }
    let file = Builder::new()
        .kv(b"general.alignment", U64, &32u64.to_le_bytes())
        .build();
    assert_eq!(
        parse_err(&file),
        Error::GgufWrongType {
            key: "general.alignment",
            expected: ValueType::U32,
            found: ValueType::U64
        }
    );
    // Default alignment 32: an offset of 16 is misaligned.
    let file = Builder::new().info(b"w", &[4], T_F32, 16).build();
    let mut file = file;
    file.resize(file.len().next_multiple_of(32) + 32, 0);
    assert_eq!(
        parse_err(&file),
        Error::GgufMisaligned {
            tensor: GgufName::new("w"),
            offset: 16,
            alignment: 32
        }
    );
}

#[test]
fn header_errors() {
    assert_eq!(
        parse_err(b""),
        Error::GgufTruncated {
            what: "magic",
            offset: 0
        }
    );
    assert_eq!(
        parse_err(b"GGUF\x03\0"),
        Error::GgufTruncated {
            what: "version",
            offset: 4
        }
    );
    let mut b = Builder::new();
    b.magic = *b"GGML";
    assert_eq!(
        parse_err(&b.build()),
        Error::GgufBadMagic { found: *b"GGML" }
    );
    for version in [0u32, 1, 4, 3u32.swap_bytes()] {
        let mut b = Builder::new();
        b.version = version;
        assert_eq!(
            parse_err(&b.build()),
            Error::GgufUnsupportedVersion(version)
        );
    }
    let v1 = Error::GgufUnsupportedVersion(1).to_string();
    assert!(v1.contains("version 1") && v1.contains("obsolete"), "{v1}");
    let be = Error::GgufUnsupportedVersion(3u32.swap_bytes()).to_string();
    assert!(be.contains("big-endian"), "{be}");
    let mut b = Builder::new();
    b.tensor_count = MAX_TENSORS as u64 + 1;
    assert_eq!(
        parse_err(&b.build()),
        Error::GgufTooManyEntries {
            what: "tensors",
            count: MAX_TENSORS as u64 + 1,
            max: MAX_TENSORS
        }
    );
    let mut b = Builder::new();
    b.metadata_count = u64::MAX;
    assert!(matches!(
        parse_err(&b.build()),
        Error::GgufTooManyEntries {
            what: "metadata entries",
            ..
        }
    ));
    // A count the file does not hold is truncation.
    let mut b = Builder::new();
    b.tensor_count = 3;
    assert_eq!(
        parse_err(&b.build()),
        Error::GgufTruncated {
            what: "tensor name",
            offset: 24
        }
    );
}

#[test]
fn every_prefix_of_a_file_is_refused() {
    let tokens: Vec<u8> = [&b"a"[..], b"bc"].iter().flat_map(|p| string(p)).collect();
    let builder = Builder::new()
        .kv(b"name", STRING, &string(b"tiny"))
        .kv(b"tokens", ARRAY, &array(STRING, 2, &tokens))
        .kv(b"scores", ARRAY, &array(F32, 2, &[0; 8]))
        .kv(b"flag", BOOL, &[1])
        .f32_tensor("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let file = builder.build();
    Gguf::parse(&file).unwrap();
    // Past the infos, a prefix lacks (some of) the tensor's data.
    let infos_end = 24 + builder.metadata.len() + builder.infos.len();
    for len in 0..file.len() {
        match Gguf::parse(&file[..len]) {
            Err(Error::GgufTruncated { offset, .. }) => {
                assert!(len < infos_end && offset <= len, "{len}")
            }
            Err(Error::GgufTensorOutOfBounds { .. }) => assert!(len >= infos_end, "{len}"),
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
}

#[test]
fn metadata_errors() {
    let file = Builder::new().kv(b"k", 13, &[0; 8]).build();
    assert_eq!(
        parse_err(&file),
        Error::GgufUnknownValueType {
            type_id: 13,
            offset: 24 + 9
        }
    );
    let file = Builder::new().kv(b"k", ARRAY, &array(99, 0, &[])).build();
    assert!(matches!(
        parse_err(&file),
        Error::GgufUnknownValueType { type_id: 99, .. }
    ));
    let nested = array(ARRAY, 1, &array(U8, 1, &[5]));
    let file = Builder::new().kv(b"k", ARRAY, &nested).build();
    assert_eq!(parse_err(&file), Error::GgufNestedArray { offset: 24 + 13 });
    let file = Builder::new().kv(b"flag", BOOL, &[2]).build();
    assert_eq!(
        parse_err(&file),
        Error::GgufInvalidBool {
            value: 2,
            offset: 24 + 16
        }
    );
    let file = Builder::new()
        .kv(b"flags", ARRAY, &array(BOOL, 3, &[0, 1, 255]))
        .build();
    let offset = file.len() - 1;
    assert_eq!(
        parse_err(&file),
        Error::GgufInvalidBool { value: 255, offset }
    );
    let file = Builder::new().kv(b"bad\xffkey", U8, &[0]).build();
    assert_eq!(
        parse_err(&file),
        Error::GgufInvalidUtf8 {
            what: "metadata key",
            offset: 24
        }
    );
    let file = Builder::new()
        .kv(b"general.name", STRING, &string(b"a"))
        .kv(b"x", U8, &[0])
        .kv(b"general.name", STRING, &string(b"b"))
        .build();
    assert_eq!(
        parse_err(&file),
        Error::GgufDuplicateKey {
            key: GgufName::new("general.name")
        }
    );
    // Lengths and counts far beyond the file: truncated, whatever the target's usize.
    let file = Builder::new()
        .kv(b"s", STRING, &u64::MAX.to_le_bytes())
        .build();
    assert_eq!(
        parse_err(&file),
        Error::GgufTruncated {
            what: "metadata string",
            offset: 24 + 13
        }
    );
    for elem in [U32, U64, STRING, BOOL] {
        let file = Builder::new()
            .kv(b"a", ARRAY, &array(elem, u64::MAX, &[0; 16]))
            .build();
        assert!(
            matches!(parse_err(&file), Error::GgufTruncated { .. }),
            "element type {elem}"
        );
    }
    let mut key = (u64::MAX - 3).to_le_bytes().to_vec();
    key.extend_from_slice(b"abc");
    let mut b = Builder::new();
    b.metadata = key;
    b.metadata_count = 1;
    assert_eq!(
        parse_err(&b.build()),
        Error::GgufTruncated {
            what: "metadata key",
            offset: 24
        }
    );
}

#[test]
fn tensor_errors() {
    let name = GgufName::new("blk.0.attn_q.weight");
    let n = b"blk.0.attn_q.weight";
    let with = |b: Builder| {
        let mut file = b.build();
        file.resize(file.len().next_multiple_of(32) + 64, 0);
        parse_err(&file)
    };
    assert_eq!(
        with(Builder::new().info(n, &[1, 1, 1, 1, 1], T_F32, 0)),
        Error::GgufTooManyDims {
            tensor: name,
            n_dims: 5
        }
    );
    assert_eq!(
        with(Builder::new().info(n, &[4], 4, 0)),
        Error::GgufUnknownType {
            tensor: name,
            id: 4
        }
    );
    assert_eq!(
        with(Builder::new().info(n, &[4], 1000, 0)),
        Error::GgufUnknownType {
            tensor: name,
            id: 1000
        }
    );
    let unsupported = with(Builder::new().info(n, &[256], T_IQ2_XXS, 0));
    assert_eq!(
        unsupported,
        Error::GgufUnsupportedType {
            tensor: name,
            ggml_type: GgmlType::IQ2_XXS
        }
    );
    let message = unsupported.to_string();
    assert!(
        message.contains("blk.0.attn_q.weight") && message.contains("IQ2_XXS (id 16)"),
        "{message}"
    );
    // Element counts and byte sizes past usize (2^60 * 2^60; on 32 bits, one dim of 2^33).
    assert_eq!(
        with(Builder::new().info(n, &[1 << 30, 1 << 30, 1 << 30], T_F32, 0)),
        Error::GgufSizeOverflow { tensor: name }
    );
    assert_eq!(
        with(Builder::new().info(n, &[u64::MAX], T_F32, 0)),
        Error::GgufSizeOverflow { tensor: name }
    );
    if usize::BITS == 64 {
        // Elements fit, bytes do not: 2^62 f32.
        assert_eq!(
            with(Builder::new().info(n, &[1 << 62], T_F32, 0)),
            Error::GgufSizeOverflow { tensor: name }
        );
    }
    assert!(matches!(
        with(Builder::new().info(n, &[1 << 20], T_Q8_0, 0)),
        Error::GgufTensorOutOfBounds { size, data_len: 64, .. } if size == (1 << 15) * 34
    ));
    assert_eq!(
        with(Builder::new().info(n, &[4], T_F32, u64::MAX - 31)),
        Error::GgufTensorOutOfBounds {
            tensor: name,
            offset: u64::MAX - 31,
            size: 16,
            data_len: 64
        }
    );
    assert_eq!(
        with(Builder::new().info(b"\xc3(", &[4], T_F32, 0)),
        Error::GgufInvalidUtf8 {
            what: "tensor name",
            offset: 24
        }
    );
    assert_eq!(
        with(
            Builder::new()
                .info(n, &[4], T_F32, 0)
                .info(b"other", &[4], T_F32, 32)
                .info(n, &[4], T_F32, 32)
        ),
        Error::GgufDuplicateTensor { name }
    );
    // Overlap: [0, 64) and [32, 48).
    assert_eq!(
        with(
            Builder::new()
                .info(n, &[16], T_F32, 0)
                .info(b"other", &[4], T_F32, 32)
        ),
        Error::GgufTensorsOverlap {
            first: name,
            second: GgufName::new("other")
        }
    );
    // Adjacent is fine: [0, 32) and [32, 48).
    let mut file = Builder::new()
        .info(n, &[8], T_F32, 0)
        .info(b"other", &[4], T_F32, 32)
        .build();
    file.resize(file.len().next_multiple_of(32) + 48, 0);
    let g = Gguf::parse(&file).unwrap();
    assert_eq!(g.tensors().map(|t| t.data.len()).sum::<usize>(), 48);
    // A Q4_K row shorter than its block.
    assert_eq!(
        with(Builder::new().info(n, &[64, 2], T_Q4_K, 0)),
        Error::GgufShapeNotBlockMultiple {
            tensor: name,
            ggml_type: GgmlType::Q4_K,
            row: 64
        }
    );
    // A file that ends inside a tensor info.
    let file = Builder::new().info(n, &[4, 4], T_F32, 0).build();
    let dims_at = find(&file, &4u64.to_le_bytes());
    assert_eq!(
        parse_err(&file[..dims_at + 3]),
        Error::GgufTruncated {
            what: "tensor dimensions",
            offset: dims_at
        }
    );
}

#[test]
fn error_names_are_kept_short_and_whole() {
    let long = "blk.12.very_long_tensor_name_for_a_test.weight";
    let name = GgufName::new(long);
    assert!(name.is_cut());
    assert_eq!(name.as_str(), &long[..40]);
    assert_eq!(name.to_string(), format!("{}…", &long[..40]));
    // A cut never splits a character: 39 ASCII bytes, then a 3-byte character.
    let wide = format!("{}▁▁", "a".repeat(39));
    assert_eq!(GgufName::new(&wide).as_str(), "a".repeat(39));
    let short = GgufName::new("token_embd.weight");
    assert!(!short.is_cut());
    assert_eq!(
        format!("{short} {short:?}"),
        "token_embd.weight \"token_embd.weight\""
    );
}

#[test]
fn every_error_message_names_its_subject() {
    let t = GgufName::new("output.weight");
    let cases: Vec<(Error, &str)> = vec![
        (
            Error::GgufTruncated {
                what: "tensor name",
                offset: 77,
            },
            "tensor name that starts at byte 77",
        ),
        (Error::GgufBadMagic { found: *b"ak42" }, "not a GGUF file"),
        (Error::GgufUnsupportedVersion(9), "version 9"),
        (
            Error::GgufTooManyEntries {
                what: "tensors",
                count: 5000,
                max: 4096,
            },
            "5000 tensors",
        ),
        (
            Error::GgufUnknownValueType {
                type_id: 13,
                offset: 40,
            },
            "value type 13",
        ),
        (Error::GgufNestedArray { offset: 40 }, "nested arrays"),
        (
            Error::GgufInvalidBool {
                value: 7,
                offset: 40,
            },
            "is 7",
        ),
        (
            Error::GgufInvalidUtf8 {
                what: "metadata key",
                offset: 24,
            },
            "metadata key at byte 24",
        ),
        (
            Error::GgufDuplicateKey {
                key: GgufName::new("general.name"),
            },
            "general.name",
        ),
        (
            Error::GgufWrongType {
                key: "general.alignment",
                expected: ValueType::U32,
                found: ValueType::F32,
            },
            "general.alignment is of type f32; it must be u32",
        ),
        (
            Error::GgufBadAlignment { value: 0 },
            "general.alignment is 0",
        ),
        (
            Error::GgufTooManyDims {
                tensor: t,
                n_dims: 7,
            },
            "output.weight has 7 dimensions",
        ),
        (
            Error::GgufUnknownType { tensor: t, id: 77 },
            "output.weight has unknown ggml type id 77",
        ),
        (Error::GgufSizeOverflow { tensor: t }, "output.weight"),
        (
            Error::GgufShapeNotBlockMultiple {
                tensor: t,
                ggml_type: GgmlType::Q8_0,
                row: 33,
            },
            "rows of 33 values, not a multiple of the Q8_0 block of 32",
        ),
        (
            Error::GgufMisaligned {
                tensor: t,
                offset: 8,
                alignment: 32,
            },
            "offset 8",
        ),
        (
            Error::GgufTensorOutOfBounds {
                tensor: t,
                offset: 0,
                size: 10,
                data_len: 5,
            },
            "(10 bytes at data offset 0)",
        ),
        (
            Error::GgufDuplicateTensor { name: t },
            "two tensors named output.weight",
        ),
        (
            Error::GgufTensorsOverlap {
                first: t,
                second: GgufName::new("x"),
            },
            "output.weight and x overlap",
        ),
        (
            Error::GgufTensorDataMismatch {
                tensor: t,
                expected: 8,
                given: 4,
            },
            "4 bytes for tensor output.weight, which takes 8",
        ),
        (
            Error::GgufTensorDataMismatch {
                tensor: t,
                expected: 0,
                given: 3,
            },
            "3 bytes of tensor data after the last tensor output.weight",
        ),
        (
            Error::QuantizeUnsupportedType {
                ggml_type: GgmlType::Q5_K,
            },
            "cannot encode ggml type Q5_K",
        ),
        (
            Error::QuantizeNotWholeBlocks {
                ggml_type: GgmlType::Q4_K,
                values: 300,
            },
            "300 values are not a whole number of Q4_K blocks of 256",
        ),
    ];
    for (error, expected) in cases {
        let message = error.to_string();
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
}

#[test]
#[cfg_attr(miri, ignore = "millions of steps: too slow interpreted")]
fn most_entries_parse() {
    // The pairwise duplicate checks at their bounds.
    let mut b = Builder::new();
    for i in 0..MAX_METADATA {
        b = b.kv(format!("key.{i}").as_bytes(), U8, &[0]);
    }
    // Data in the reverse order of the infos, so that the pairwise overlap check runs too.
    b.data = vec![0; 32 * MAX_TENSORS];
    for i in 0..MAX_TENSORS {
        let offset = 32 * (MAX_TENSORS - 1 - i);
        b.data[offset..offset + 4].copy_from_slice(&(i as f32).to_le_bytes());
        b = b.info(
            format!("blk.{i}.weight").as_bytes(),
            &[1],
            T_F32,
            offset as u64,
        );
    }
    let file = b.build();
    let start = std::time::Instant::now();
    let g = Gguf::parse(&file).unwrap();
    std::eprintln!(
        "{MAX_TENSORS} tensors and {MAX_METADATA} keys parsed in {:?}",
        start.elapsed()
    );
    assert_eq!(
        (g.tensor_count(), g.metadata_len()),
        (MAX_TENSORS, MAX_METADATA)
    );
    assert_eq!(
        g.tensor("blk.4095.weight").unwrap().data,
        4095f32.to_le_bytes()
    );
}

/// The writer (`gguf::write`) lays a valid file out byte for byte as the independent
/// `Builder` does, but for the padding it adds after the last tensor (as gguf-py does).
#[test]
fn the_writer_writes_what_the_builder_builds() {
    use super::write::{GgufWriter, MetaArray, MetaValue, TensorSpec};
    let pieces = ["<unk>", "▁a", ""];
    let piece_bytes: Vec<u8> = pieces.iter().flat_map(|p| string(p.as_bytes())).collect();
    let f32s: Vec<u8> = [0.5f32, -1.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let q8 = [7u8; 34];
    let built = Builder::new()
        .kv(b"general.architecture", STRING, &string(b"llama"))
        .alignment(64)
        .kv(b"n", I64, &(-3i64).to_le_bytes())
        .kv(b"ok", BOOL, &[1])
        .kv(b"tokens", ARRAY, &array(STRING, 3, &piece_bytes))
        .kv(b"scores", ARRAY, &array(F32, 2, &f32s))
        .f32_tensor("norm", &[2], &[0.5, -1.0])
        .tensor("q", &[32, 1], T_Q8_0, &q8)
        .build();
    let metadata = [
        ("general.architecture", MetaValue::String("llama")),
        (ALIGNMENT_KEY, MetaValue::U32(64)),
        ("n", MetaValue::I64(-3)),
        ("ok", MetaValue::Bool(true)),
        ("tokens", MetaValue::Array(MetaArray::String(&pieces))),
        ("scores", MetaValue::Array(MetaArray::F32(&[0.5, -1.0]))),
    ];
    let tensors = [
        TensorSpec::new("norm", GgmlType::F32, &[2]),
        TensorSpec::new("q", GgmlType::Q8_0, &[32, 1]),
    ];
    let mut written = Vec::new();
    let mut writer = GgufWriter::new(&mut written, &metadata, &tensors).unwrap();
    writer.data(&f32s).unwrap();
    writer.data(&q8).unwrap();
    writer.finish().unwrap();
    assert_eq!(written.len(), built.len().next_multiple_of(64));
    assert_eq!(written[..built.len()], built[..]);
    assert!(written[built.len()..].iter().all(|&b| b == 0));
}
