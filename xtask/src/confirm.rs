//! Rule 6 of the design: a destructive step on a terminal asks for the target database's name to
//! be typed; without a terminal it needs `--yes`, and refuses (exit 2) otherwise. A choice that
//! `--yes` must not make (db-pull's `--unmasked`) asks for its own word on a terminal.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result};

use crate::exit::UsageError;

/// Asks before `action` (for example "replace local core database sigmasight_db") is done to the
/// database `expected`. `--yes` skips the question; no terminal and no `--yes` is a usage error.
pub fn confirm_destructive(action: &str, expected: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError::new(format!(
            "refusing to {action} without confirmation: there is no terminal to ask on; pass \
             --yes to confirm (nothing was changed)"
        ))
        .into());
    }
    let answer = ask(&format!(
        "This will {action}.\nType the database name `{expected}` to continue: "
    ))?;
    check_answer(&answer, expected)
}

/// On a terminal, asks for `word` to be typed before `action`, whatever `--yes` says (a choice
/// that `--yes` must not make silently); without a terminal the flag that asked for it suffices.
pub fn confirm_word(action: &str, word: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Ok(());
    }
    let answer = ask(&format!("This will {action}.\nType `{word}` to continue: "))?;
    check_answer(&answer, word)
}

/// Writes `prompt` to stderr and reads one line of the terminal's answer, without its line end.
fn ask(prompt: &str) -> Result<String> {
    let mut stderr = std::io::stderr();
    write!(stderr, "{prompt}")
        .and_then(|_| stderr.flush())
        .context("writing the confirmation prompt")?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    Ok(answer.trim_end_matches(['\r', '\n']).to_string())
}

fn check_answer(answer: &str, expected: &str) -> Result<()> {
    if answer == expected {
        Ok(())
    } else {
        Err(UsageError::new(format!(
            "confirmation refused: typed `{answer}`, expected `{expected}` (nothing was changed)"
        ))
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_name_confirms() {
        assert!(check_answer("sigmasight_db", "sigmasight_db").is_ok());
        let err = check_answer("sigmasight", "sigmasight_db").unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some());
        assert!(
            err.to_string().contains("expected `sigmasight_db`"),
            "{err}"
        );
    }
}
