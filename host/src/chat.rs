//! `llama2 MODEL -m chat`: llama2.c's chat mode, safely. User turns come from stdin one line
//! each (with a prompt on a terminal, plain lines when piped, so it can be scripted); the
//! conversation ends cleanly at end of input or when the context is full; a message too long
//! for the positions left is refused with a note on stderr and the next line is read. A line
//! is never stored past what the positions left could hold, so endless input (`/dev/zero`)
//! cannot grow memory.

use std::io::{BufRead, IsTerminal};

use llama2_core::{
    prompt_buffer_len, render_turn, rendered_len, Chat, Error, GenerateError, Generator, Tokenizer,
    TurnEnd,
};

use crate::cli::RunArgs;
use crate::error::CliError;
use crate::generate::generation_failed;
use crate::load::{MappedFile, StopIfCutShort};
use crate::pool::ThreadPool;
use crate::stdio::{self, note};

type Result<T> = std::result::Result<T, CliError>;
type Stdout<'f> =
    StopIfCutShort<'f, embedded_io_adapters::std::FromStd<std::io::StdoutLock<'static>>>;

/// Reads user lines from stdin and answers them until input ends or positions run out.
pub fn run(
    args: &RunArgs,
    generator: Generator<'_, '_, '_, '_, ThreadPool>,
    model_file: &MappedFile,
) -> Result<()> {
    let model_path = model_file.path.as_path();
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut input = stdin.lock();
    let mut out = StopIfCutShort {
        file: model_file,
        inner: embedded_io_adapters::std::FromStd::new(std::io::stdout().lock()),
    };
    let tokenizer = generator.tokenizer;
    // No token covers more bytes of a text than the vocabulary's longest piece.
    let longest = tokenizer.max_piece_len().max(1);
    let mut chat = Chat::new(generator, args.steps);

    let (system, source) = match &args.system_prompt {
        Some(system) => (system.clone().into_bytes(), "-y/--system-prompt"),
        None => {
            if interactive {
                print(&mut out, "Enter system prompt (optional): ")?;
            }
            let limit = byte_limit(chat.room(), longest);
            match read_line(&mut input, limit)? {
                Line::Text(system) => (system, "stdin"),
                Line::End => return Ok(()),
                Line::TooLong => {
                    return Err(CliError::usage(
                        "stdin",
                        format!(
                            "the system prompt (the first line) is over {limit} bytes, more \
                             than the conversation's {} positions can hold",
                            chat.room()
                        ),
                    ))
                }
            }
        }
    };
    check_system_fits(tokenizer, &system, chat.room(), source)?;
    if source == "stdin" && !interactive {
        note!(
            "llama2: stdin is not a terminal: its first line was taken as the system prompt \
             (give one with -y to make every line a user turn)"
        );
    }

    let mut user = match &args.prompt {
        Some(prompt) => Line::Text(prompt.clone().into_bytes()),
        None => next_user_line(&mut input, &mut out, interactive, &chat, longest)?,
    };
    let (mut text_buf, mut token_buf) = (Vec::new(), Vec::new());
    loop {
        let message = match user {
            Line::End => return Ok(()),
            Line::Text(message) => message,
            Line::TooLong => {
                print(&mut out, "Assistant: \n")?;
                note!(
                    "llama2: that message is over {} bytes, more than the {} positions left \
                     can hold; send a shorter one",
                    byte_limit(chat.room(), longest),
                    chat.room()
                );
                user = next_user_line(&mut input, &mut out, interactive, &chat, longest)?;
                continue;
            }
        };
        let needed = rendered_len(Some(&system), &message);
        text_buf.resize(needed, 0);
        // One more than the encoding needs: the previous reply's EOS goes first.
        let tokens_len = prompt_buffer_len(needed).and_then(|len| len.checked_add(1));
        let tokens_len = tokens_len.ok_or_else(|| CliError::usage("stdin", Error::SizeOverflow))?;
        token_buf.resize(tokens_len, 0);
        print(&mut out, "Assistant: ")?;
        let turn = chat.turn(
            Some(&system),
            &message,
            &mut text_buf,
            &mut token_buf,
            &mut out,
        );
        match turn {
            Ok(TurnEnd::Eos) => print(&mut out, "\n")?,
            Ok(TurnEnd::ContextFull) => {
                print(&mut out, "\n")?;
                note!(
                    "llama2: the conversation filled its {} positions; it ends here",
                    chat.position()
                );
                return Ok(());
            }
            Err(GenerateError::Engine(Error::PromptTooLong { tokens, context })) => {
                print(&mut out, "\n")?;
                note!(
                    "llama2: that message is {tokens} tokens with the chat template, but only \
                     {context} positions are left; send a shorter one"
                );
            }
            Err(e) => return Err(generation_failed(e, model_path, "stdin")),
        }
        user = next_user_line(&mut input, &mut out, interactive, &chat, longest)?;
    }
}

/// Refuses, once and for the whole conversation, a system prompt that cannot fit even with
/// an empty user message (`source` names where it came from).
fn check_system_fits(
    tokenizer: &Tokenizer<'_>,
    system: &[u8],
    room: usize,
    source: &str,
) -> Result<()> {
    if system.is_empty() {
        return Ok(());
    }
    let mut text = vec![0u8; rendered_len(Some(system), b"")];
    let len = render_turn(Some(system), b"", &mut text).map_err(|e| CliError::usage(source, e))?;
    let tokens_len =
        prompt_buffer_len(len).ok_or_else(|| CliError::usage(source, Error::SizeOverflow))?;
    let mut tokens = vec![0u32; tokens_len];
    let n = tokenizer
        .encode(&text[..len], true, false, &mut tokens)
        .map_err(|e| CliError::usage(source, e))?;
    if n > room {
        return Err(CliError::usage(
            source,
            format!(
                "the system prompt is {n} tokens with the chat template, more than the \
                 conversation's {room} positions; give a shorter one or more positions (-n, \
                 --context)"
            ),
        ));
    }
    Ok(())
}

/// Shows the user prompt on a terminal, then reads the next user line, bounded by what the
/// positions left could hold.
fn next_user_line<R: BufRead>(
    input: &mut R,
    out: &mut Stdout<'_>,
    interactive: bool,
    chat: &Chat<'_, '_, '_, '_, ThreadPool>,
    longest: usize,
) -> Result<Line> {
    if interactive {
        print(out, "User: ")?;
    }
    read_line(input, byte_limit(chat.room(), longest))
}

/// The most bytes a message can have and still fit `room` positions: each token covers at
/// most `longest` bytes of it.
fn byte_limit(room: usize, longest: usize) -> usize {
    room.saturating_mul(longest)
}

/// One line of input.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// The line's bytes (any bytes), without its line ending.
    Text(Vec<u8>),
    /// A line longer than the limit, read to its end but not kept.
    TooLong,
    /// End of input.
    End,
}

/// Reads one line, keeping at most `limit` bytes of it: a longer line is consumed to its
/// newline (or the end of input) without being stored, and reported as [`Line::TooLong`].
fn read_line<R: BufRead>(input: &mut R, limit: usize) -> Result<Line> {
    let mut line = Vec::new();
    let (mut any, mut too_long) = (false, false);
    loop {
        let buffer = match input.fill_buf() {
            Ok(buffer) => buffer,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stdio::stdin_failed(e)),
        };
        if buffer.is_empty() {
            break;
        }
        any = true;
        let newline = buffer.iter().position(|&b| b == b'\n');
        let chunk = &buffer[..newline.unwrap_or(buffer.len())];
        // One byte of slack for a `\r` before the newline.
        if !too_long && line.len() + chunk.len() > limit.saturating_add(1) {
            too_long = true;
            line = Vec::new();
        }
        if !too_long {
            line.extend_from_slice(chunk);
        }
        let used = newline.map_or(buffer.len(), |at| at + 1);
        input.consume(used);
        if newline.is_some() {
            break;
        }
    }
    while line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(match (any, too_long || line.len() > limit) {
        (false, _) => Line::End,
        (true, true) => Line::TooLong,
        (true, false) => Line::Text(line),
    })
}

/// Writes `text` to stdout and flushes it.
fn print(out: &mut Stdout<'_>, text: &str) -> Result<()> {
    use embedded_io::Write as _;
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(stdio::stdout_failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], limit: usize) -> Vec<Line> {
        // A small buffer, so lines span several reads.
        let mut reader = std::io::BufReader::with_capacity(3, input);
        let mut lines = Vec::new();
        loop {
            match read_line(&mut reader, limit).unwrap() {
                Line::End => return lines,
                line => lines.push(line),
            }
        }
    }

    #[test]
    fn lines_longer_than_the_limit_are_skipped_to_their_end() {
        let text = |s: &str| Line::Text(s.as_bytes().to_vec());
        assert_eq!(
            lines(b"hello\r\nabcdefghij\nlast", 5),
            [text("hello"), Line::TooLong, text("last")]
        );
        assert_eq!(lines(b"\n\n", 5), [text(""), text("")]);
        assert_eq!(lines(b"abcdef", 5), [Line::TooLong]);
        assert_eq!(lines(b"abcde\r", 5), [text("abcde")]);
        assert!(lines(b"", 5).is_empty());
    }
}
