//! Chat with Llama 2's template, turn by turn over one KV cache, as llama2.c's `-m chat`
//! does, but safe: input of any length, a clear refusal when a turn does not fit, and
//! no state lost on a refused turn.

use crate::error::{Buffer, Error};
use crate::generate::{write_piece, GenerateError, Generator};
use crate::parallel::Parallel;
use crate::text::TextDecoder;

const FIRST_TURN: [&[u8]; 3] = [b"[INST] <<SYS>>\n", b"\n<</SYS>>\n\n", b" [/INST]"];
const LATER_TURN: [&[u8]; 2] = [b"[INST] ", b" [/INST]"];

/// Renders a user turn with Llama 2's chat template into `out` and returns its length:
/// `[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]` when a non-empty system prompt is
/// given (the first turn), else `[INST] {user} [/INST]`. `out` needs
/// [`rendered_len`] bytes.
pub fn render_turn(system: Option<&[u8]>, user: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let needed = rendered_len(system, user);
    let actual = out.len();
    let out = out.get_mut(..needed).ok_or(Error::BufferTooSmall {
        buffer: Buffer::Text,
        needed,
        actual,
    })?;
    let parts: [&[u8]; 5] = match system {
        Some(system) if !system.is_empty() => {
            [FIRST_TURN[0], system, FIRST_TURN[1], user, FIRST_TURN[2]]
        }
        _ => [LATER_TURN[0], user, LATER_TURN[1], b"", b""],
    };
    let mut at = 0;
    for part in parts {
        out[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Ok(at)
}

/// Bytes [`render_turn`] writes for these inputs.
pub fn rendered_len(system: Option<&[u8]>, user: &[u8]) -> usize {
    match system {
        Some(system) if !system.is_empty() => {
            FIRST_TURN.iter().map(|p| p.len()).sum::<usize>() + system.len() + user.len()
        }
        _ => LATER_TURN.iter().map(|p| p.len()).sum::<usize>() + user.len(),
    }
}

/// How an assistant turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnEnd {
    /// The model chose EOS: the user may speak again.
    Eos,
    /// The positions allowed ran out; the conversation is over.
    ContextFull,
}

/// A conversation: the next position, and whether an EOS is still to be fed to the model.
pub struct Chat<'g, 'a, 'state, 'sampler, P: Parallel> {
    generator: Generator<'g, 'a, 'state, 'sampler, P>,
    /// Positions allowed in all (llama2.c's `steps`).
    limit: usize,
    pos: usize,
    /// The last reply ended on EOS, which llama2.c feeds before the next turn.
    eos_pending: bool,
}

impl<P: Parallel> core::fmt::Debug for Chat<'_, '_, '_, '_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Chat")
            .field("pos", &self.pos)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<'g, 'a, 'state, 'sampler, P: Parallel> Chat<'g, 'a, 'state, 'sampler, P> {
    /// A conversation of at most `steps` positions, resolved like generation's: 0 means the
    /// state's context, more than it is clamped unless the state slides its window.
    pub fn new(generator: Generator<'g, 'a, 'state, 'sampler, P>, steps: usize) -> Self {
        let context = generator.state.context();
        let limit = match steps {
            0 => context,
            n if generator.state.sliding_window() => n,
            n => n.min(context),
        };
        Chat {
            generator,
            limit,
            pos: 0,
            eos_pending: false,
        }
    }

    /// Positions used so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Positions the next turn may use, its prompt and its reply: those left and, with a
    /// sliding window, at most the window. A turn of more tokens is refused.
    pub fn room(&self) -> usize {
        let left = self.limit - self.pos;
        if self.generator.state.sliding_window() {
            left.min(self.generator.state.context())
        } else {
            left
        }
    }

    /// Runs one turn: renders `user` (with `system` on the first turn), feeds it, and writes
    /// the assistant's reply to `out` until it chooses EOS. `text_buf` needs
    /// [`rendered_len`] bytes and `token_buf` one token (the pending EOS) more than
    /// [`prompt_buffer_len`](crate::prompt_buffer_len) of that.
    ///
    /// A turn that does not fit the positions left (or, with a sliding window, the window)
    /// is refused with [`Error::PromptTooLong`] (its real token count) before anything is
    /// run, so the caller can ask for a shorter one.
    pub fn turn<W: embedded_io::Write>(
        &mut self,
        system: Option<&[u8]>,
        user: &[u8],
        text_buf: &mut [u8],
        token_buf: &mut [u32],
        out: &mut W,
    ) -> Result<TurnEnd, GenerateError<W::Error>> {
        let window = self.room();
        let g = &mut self.generator;
        let system = if self.pos == 0 { system } else { None };
        let len = render_turn(system, user, text_buf)?;
        // The pending EOS goes first, then the turn (which starts with BOS).
        let skip = usize::from(!self.eos_pending);
        let (head, rest) = token_buf.split_first_mut().ok_or(Error::BufferTooSmall {
            buffer: Buffer::Tokens,
            needed: 1,
            actual: 0,
        })?;
        let eos = g.tokenizer.eos();
        *head = eos;
        let n = 1 + g.tokenizer.encode(&text_buf[..len], true, false, rest)?;
        let tokens = &token_buf[skip..n];
        // The turn must fit the positions left and, with a sliding window, the window.
        if tokens.len() > window {
            return Err(Error::PromptTooLong {
                tokens: tokens.len(),
                context: window,
            }
            .into());
        }
        self.eos_pending = false;
        // llama2.c samples after every position, prompt included: the same random stream.
        let mut logits_token = 0;
        for &token in tokens {
            let logits = g.model.forward(g.state, token, self.pos, g.parallel)?;
            self.pos += 1;
            logits_token = g.sampler.sample(logits)?;
        }
        let mut text = TextDecoder::new();
        let mut token = tokens[tokens.len() - 1];
        let mut next = logits_token;
        loop {
            if next == eos {
                self.eos_pending = true;
                text.finish();
                return Ok(TurnEnd::Eos);
            }
            write_piece(g.tokenizer, &mut text, token, next, out)?;
            if self.pos >= self.limit {
                text.finish();
                return Ok(TurnEnd::ContextFull);
            }
            token = next;
            let logits = g.model.forward(g.state, token, self.pos, g.parallel)?;
            self.pos += 1;
            next = g.sampler.sample(logits)?;
        }
    }
}
