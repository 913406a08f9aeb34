//! The terminal while the view runs: raw mode, the alternate screen and a hidden cursor, all given back when
//! the guard drops, on an error and on a panic too (a panic hook restores before the message is printed, so
//! the message is readable and the shell is usable). Keys come from a thread of their own.

use std::io::{self, Stdout, Write};
use std::sync::Once;
use std::time::Duration;

use connect_core::{Error, ErrorKind, Result};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::crossterm::{cursor, execute};
use tokio::sync::mpsc;

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `q`, Esc or Ctrl-C.
    Quit,
    /// The terminal changed size: draw again now.
    Redraw,
}

/// The terminal in the view's modes; restored on drop.
pub struct Screen {
    /// What ratatui draws on.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

fn terminal_error(e: io::Error) -> Error {
    Error::new(ErrorKind::Unavailable, "watch.terminal", "stdout", e.to_string())
        .with_hint("run it in a terminal, or pipe it for one plain line per sample")
}

/// Puts the terminal back as it was: cursor shown, main screen, cooked mode. Each step is tried even when
/// one before failed.
pub fn restore() {
    let mut out = io::stdout();
    let _ = execute!(out, cursor::Show, LeaveAlternateScreen);
    let _ = disable_raw_mode();
    let _ = out.flush();
}

impl Screen {
    /// Enters raw mode and the alternate screen, hides the cursor, and installs the panic hook (once).
    pub fn enter() -> Result<Screen> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        enable_raw_mode().map_err(terminal_error)?;
        let mut out = io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(terminal_error(e));
        }
        let terminal = Terminal::new(CrosstermBackend::new(out)).map_err(|e| {
            restore();
            terminal_error(e)
        })?;
        Ok(Screen { terminal })
    }

    /// Draws one frame.
    pub fn draw(&mut self, render: impl FnOnce(&mut ratatui::Frame<'_>)) -> Result<()> {
        self.terminal.draw(render).map(drop).map_err(terminal_error)
    }
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Screen")
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Reads keys on a thread of its own (crossterm's reads block) and sends what they ask for; the thread
/// ends when the receiver is dropped (it looks every 100 ms).
pub fn keys() -> mpsc::Receiver<Input> {
    let (send, receive) = mpsc::channel(8);
    std::thread::spawn(move || {
        while !send.is_closed() {
            match event::poll(Duration::from_millis(100)) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(_) => return,
            }
            let input = match event::read() {
                Ok(Event::Key(key)) if key.kind != KeyEventKind::Release => match key.code {
                    KeyCode::Char('q') | KeyCode::Esc => Some(Input::Quit),
                    KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Some(Input::Quit),
                    _ => None,
                },
                Ok(Event::Resize(..)) => Some(Input::Redraw),
                Ok(_) => None,
                Err(_) => return,
            };
            if let Some(input) = input
                && send.blocking_send(input).is_err()
            {
                return;
            }
        }
    });
    receive
}
