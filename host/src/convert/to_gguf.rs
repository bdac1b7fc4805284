//! llama2.c → GGUF: the tensors in the order and with the names llama.cpp's llama2.c
//! converter writes, the matrices encoded by [`encode::quantize`], and the command that
//! writes them with the tokenizer.

use embedded_io_adapters::std::FromStd;
use llama2_core::gguf::write::{GgufWriter, MetaArray, MetaValue, TensorSpec, WriteError};
use llama2_core::gguf::{self, GgmlType};
use llama2_core::quant::encode;
use llama2_core::{Matrix, Model, Tokenizer};

use super::vocabulary::{Vocabulary, BOS_ID, EOS_ID, UNKNOWN_ID};
use super::{ConvertArgs, OutType};
use crate::atomic_write::write_atomically;
use crate::error::CliError;
use crate::load::{read_tokenizer, tokenizer_path, MappedFile};
use crate::non_finite::{NonFinite, Report};
use crate::stdio;

/// Converts the llama2.c model `model` (mapped from `file`) to a GGUF file.
pub(super) fn run(
    args: &ConvertArgs,
    file: &MappedFile,
    model: &Model<'_>,
) -> Result<(), CliError> {
    if args.tokenizer_out.is_some() {
        return Err(CliError::usage(
            "--tokenizer-out",
            "only a GGUF input has a vocabulary to write out; a GGUF output holds its own",
        ));
    }
    let tokenizer_file = tokenizer_path(args.tokenizer.as_deref(), &args.input)?;
    let bytes = read_tokenizer(&tokenizer_file)?;
    let vocab_size = model.config.vocab_size;
    let mut index = vec![0u32; Tokenizer::index_len(vocab_size).unwrap_or(0)];
    let tokenizer = Tokenizer::new(&bytes, vocab_size, &mut index)
        .map_err(|e| CliError::file(&tokenizer_file, e))?;
    let vocabulary =
        Vocabulary::from_llama2c(&tokenizer).map_err(|e| CliError::file(&tokenizer_file, e))?;
    let ty = args.out_type;
    if ty.is_quantized() {
        check_finite(model, ty, args)?;
    }
    write_atomically(
        &args.output,
        &[args.input.as_path(), tokenizer_file.as_path()],
        |out| {
            write_gguf(model, &vocabulary, ty, &mut FromStd::new(out)).map_err(|e| match e {
                GgufError::Model(e @ llama2_core::Error::GgufShapeNotBlockMultiple { .. }) => {
                    CliError::usage(
                        format!("--type {}", ty.name()),
                        format!("{e}; choose a type whose block divides every row (f32, f16 and bf16 always do)"),
                    )
                }
                GgufError::Model(e) => CliError::file(&args.input, e),
                GgufError::Write(e) => CliError::file(&args.output, e),
            })?;
            // A model cut short or rewritten while it was read must not become OUT.
            file.check_unchanged()
        },
    )?;
    stdio::note!(
        "wrote {} (GGUF v3, {} matrices, {} tokens from {})",
        args.output.display(),
        ty.ggml_type(),
        vocab_size,
        tokenizer_file.display()
    );
    Ok(())
}

/// Refuses to quantize non-finite weights (named per tensor) unless `--allow-non-finite`,
/// as `quantize` does: a NaN or an infinity spoils its whole block's scale.
fn check_finite(model: &Model<'_>, ty: OutType, args: &ConvertArgs) -> Result<(), CliError> {
    let mut row = Vec::new();
    let counts = plan(model, ty.ggml_type()).into_iter().map(|tensor| {
        let counts = match tensor.source {
            Source::Norm(values) => NonFinite::count(values),
            Source::Matrix(m) => {
                row.resize(m.cols(), 0.0);
                let mut total = NonFinite::default();
                for r in 0..m.rows() {
                    m.copy_row(r, &mut row);
                    let c = NonFinite::count(&row);
                    total.nan += c.nan;
                    total.pos_inf += c.pos_inf;
                    total.neg_inf += c.neg_inf;
                }
                total
            }
        };
        (tensor.name, counts)
    });
    let report = Report::from_counts(counts);
    if report.is_clean() {
        return Ok(());
    }
    if !args.allow_non_finite {
        return Err(CliError::file(
            &args.input,
            format!(
                "non-finite weights ({report}); refusing to quantize them \
                 (--allow-non-finite quantizes anyway)"
            ),
        ));
    }
    stdio::note!(
        "llama2: warning: {}: non-finite weights ({report}); quantizing anyway \
         (--allow-non-finite)",
        args.input.display()
    );
    Ok(())
}

/// Why [`write_gguf`] failed.
#[derive(Debug)]
pub enum GgufError<E> {
    /// The model cannot be written as asked (a row not a whole number of blocks).
    Model(llama2_core::Error),
    /// The sink failed.
    Write(E),
}

impl<E> From<WriteError<E>> for GgufError<E> {
    fn from(e: WriteError<E>) -> Self {
        match e {
            WriteError::Gguf(e) => GgufError::Model(e),
            WriteError::Sink(e) => GgufError::Write(e),
        }
    }
}

/// Where a tensor's values come from.
enum Source<'a> {
    Norm(&'a [f32]),
    Matrix(Matrix<'a>),
}

/// One tensor of the output.
struct Planned<'a> {
    name: String,
    dims: Vec<usize>,
    ty: GgmlType,
    source: Source<'a>,
}

/// The tensors of a GGUF file of `model`, in the order llama.cpp's llama2.c converter
/// writes them, norms F32 and matrices `ty`.
fn plan<'a>(model: &Model<'a>, ty: GgmlType) -> Vec<Planned<'a>> {
    let (c, w) = (&model.config, &model.weights);
    let norm = |name: String, values: &'a [f32]| Planned {
        name,
        dims: vec![values.len()],
        ty: GgmlType::F32,
        source: Source::Norm(values),
    };
    let matrix = |name: String, m: Matrix<'a>| Planned {
        name,
        dims: vec![m.cols(), m.rows()],
        ty,
        source: Source::Matrix(m),
    };
    let mut tensors = vec![
        matrix("token_embd.weight".into(), w.token_embedding),
        norm("output_norm.weight".into(), w.rms_final),
    ];
    if !c.shared_classifier {
        tensors.push(matrix("output.weight".into(), w.classifier));
    }
    for l in 0..c.n_layers {
        let layer = w.layer(c, l);
        let name = |what: &str| format!("blk.{l}.{what}.weight");
        tensors.extend([
            matrix(name("attn_q"), layer.wq),
            matrix(name("attn_k"), layer.wk),
            matrix(name("attn_v"), layer.wv),
            matrix(name("attn_output"), layer.wo),
            norm(name("attn_norm"), layer.rms_att),
            matrix(name("ffn_gate"), layer.w1),
            matrix(name("ffn_down"), layer.w2),
            matrix(name("ffn_up"), layer.w3),
            norm(name("ffn_norm"), layer.rms_ffn),
        ]);
    }
    tensors
}

/// The metadata of a GGUF file of `model`: what llama.cpp's llama2.c converter writes
/// (without its two "none" token ids), plus the file type, the RoPE base and, for quantized
/// matrices, the quantization version, as `llama-quantize` adds them, and an alignment of
/// 64 bytes.
fn metadata<'a>(
    model: &Model<'_>,
    vocabulary: &'a Vocabulary,
    pieces: &'a [&'a str],
    ty: OutType,
) -> Result<Vec<(&'static str, MetaValue<'a>)>, llama2_core::Error> {
    use MetaValue as M;
    let c = &model.config;
    let u32_of = |n: usize| {
        u32::try_from(n)
            .map(M::U32)
            .map_err(|_| llama2_core::Error::SizeOverflow)
    };
    let mut metadata = vec![
        ("general.architecture", M::String("llama")),
        ("general.name", M::String("llama")),
        ("general.file_type", M::U32(ty.file_type())),
        ("llama.context_length", u32_of(c.seq_len)?),
        ("llama.embedding_length", u32_of(c.dim)?),
        ("llama.feed_forward_length", u32_of(c.hidden_dim)?),
        ("llama.block_count", u32_of(c.n_layers)?),
        ("llama.attention.head_count", u32_of(c.n_heads)?),
        ("llama.attention.head_count_kv", u32_of(c.n_kv_heads)?),
        ("llama.rope.dimension_count", u32_of(c.head_size())?),
        ("llama.rope.freq_base", M::F32(model.numerics.rope_base)),
        (
            "llama.attention.layer_norm_rms_epsilon",
            M::F32(model.numerics.rms_eps),
        ),
        ("tokenizer.ggml.model", M::String("llama")),
        ("tokenizer.ggml.tokens", M::Array(MetaArray::String(pieces))),
        (
            "tokenizer.ggml.scores",
            M::Array(MetaArray::F32(&vocabulary.scores)),
        ),
        (
            "tokenizer.ggml.token_type",
            M::Array(MetaArray::I32(&vocabulary.types)),
        ),
        ("tokenizer.ggml.unknown_token_id", M::U32(UNKNOWN_ID)),
        ("tokenizer.ggml.bos_token_id", M::U32(BOS_ID)),
        ("tokenizer.ggml.eos_token_id", M::U32(EOS_ID)),
    ];
    if ty.is_quantized() {
        metadata.push(("general.quantization_version", M::U32(2)));
    }
    // Tensors on 64-byte lines (llama.cpp's default is 32): an AVX-512 load of a row then
    // never straddles two lines, which measured 3-8 % on f32 prompts.
    metadata.push(("general.alignment", M::U32(64)));
    Ok(metadata)
}

/// Writes `model` (any format this crate reads) as a GGUF v3 llama file with `vocabulary`,
/// its matrices encoded as `ty` (norms stay F32). Used by `convert` and by the benchmark's
/// synthetic GGUF models.
pub fn write_gguf<W: embedded_io::Write>(
    model: &Model<'_>,
    vocabulary: &Vocabulary,
    ty: OutType,
    out: &mut W,
) -> Result<(), GgufError<W::Error>> {
    let pieces: Vec<&str> = vocabulary.pieces.iter().map(String::as_str).collect();
    let metadata = metadata(model, vocabulary, &pieces, ty).map_err(GgufError::Model)?;
    let planned = plan(model, ty.ggml_type());
    let specs: Vec<TensorSpec<'_>> = planned
        .iter()
        .map(|t| TensorSpec::new(&t.name, t.ty, &t.dims))
        .collect();
    let mut writer = GgufWriter::new(&mut *out, &metadata, &specs)?;
    let mut row = Vec::new();
    let mut bytes = Vec::new();
    for tensor in &planned {
        match tensor.source {
            Source::Norm(values) => {
                for v in values {
                    writer.data(&v.to_le_bytes())?;
                }
            }
            Source::Matrix(m) => {
                row.resize(m.cols(), 0.0);
                let block = tensor.ty.block().unwrap_or(gguf::Block {
                    elements: 1,
                    bytes: 4,
                });
                bytes.resize(m.cols() / block.elements.max(1) * block.bytes, 0);
                for r in 0..m.rows() {
                    m.copy_row(r, &mut row);
                    let len =
                        encode::quantize(tensor.ty, &row, &mut bytes).map_err(GgufError::Model)?;
                    writer.data(&bytes[..len])?;
                }
            }
        }
    }
    writer.finish()?;
    Ok(())
}
