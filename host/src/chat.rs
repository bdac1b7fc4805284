//! `llama2 MODEL -m chat`: llama2.c's chat mode, safely. User turns come from stdin one line
//! each (with a prompt on a terminal, plain lines when piped, so it can be scripted); the
//! conversation ends cleanly at end of input or when the context is full; a message too long
//! for the positions left is refused with a note on stderr and the next line is read.

use std::io::{BufRead, IsTerminal, Write};

use llama2_core::{
    prompt_buffer_len, rendered_len, Chat, Error, GenerateError, Generator, TurnEnd,
};

use crate::cli::RunArgs;
use crate::pool::ThreadPool;

type Result<T> = std::result::Result<T, GenerateError<std::io::Error>>;

/// Reads user lines from stdin and answers them until input ends or positions run out.
pub fn run(args: &RunArgs, generator: Generator<'_, '_, '_, ThreadPool>) -> Result<()> {
    let stdin = std::io::stdin();
    let mut input = Input {
        lines: stdin.lock(),
        interactive: stdin.is_terminal(),
    };
    let mut out = embedded_io_adapters::std::FromStd::new(std::io::stdout().lock());
    let system = match &args.system_prompt {
        Some(system) => system.clone().into_bytes(),
        None => input
            .read("Enter system prompt (optional): ")?
            .unwrap_or_default(),
    };
    let mut user = match &args.prompt {
        Some(prompt) => Some(prompt.clone().into_bytes()),
        None => input.read("User: ")?,
    };
    let mut chat = Chat::new(generator, args.steps);
    let (mut text_buf, mut token_buf) = (Vec::new(), Vec::new());
    while let Some(message) = user.take() {
        let needed = rendered_len(Some(&system), &message);
        text_buf.resize(needed, 0);
        // One more than the encoding needs: the previous reply's EOS goes first.
        let tokens_len = prompt_buffer_len(needed).and_then(|len| len.checked_add(1));
        token_buf.resize(tokens_len.ok_or(Error::SizeOverflow)?, 0);
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
                eprintln!(
                    "llama2: the conversation filled its {} positions; it ends here",
                    chat.position()
                );
                return Ok(());
            }
            Err(GenerateError::Engine(Error::PromptTooLong { tokens, context })) => {
                print(&mut out, "\n")?;
                eprintln!(
                    "llama2: that message is {tokens} tokens with the chat template, but only \
                     {context} positions are left; send a shorter one"
                );
            }
            Err(e) => return Err(e),
        }
        user = input.read("User: ")?;
    }
    Ok(())
}

/// Lines of stdin, with a prompt shown only on a terminal.
struct Input<R> {
    lines: R,
    interactive: bool,
}

impl<R: BufRead> Input<R> {
    /// The next line (any bytes) without its line ending, or `None` at end of input.
    fn read(&mut self, prompt: &str) -> Result<Option<Vec<u8>>> {
        if self.interactive {
            let mut stdout = std::io::stdout();
            write!(stdout, "{prompt}")
                .and_then(|()| stdout.flush())
                .map_err(GenerateError::Write)?;
        }
        let mut line = Vec::new();
        let read = self
            .lines
            .read_until(b'\n', &mut line)
            .map_err(GenerateError::Write)?;
        if read == 0 {
            return Ok(None);
        }
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        Ok(Some(line))
    }
}

fn print<W: embedded_io::Write<Error = std::io::Error>>(out: &mut W, text: &str) -> Result<()> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(GenerateError::Write)
}
