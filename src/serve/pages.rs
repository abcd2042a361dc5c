//! Paging a result on the display while the loop waits: a button press turns
//! the page at once, and without one the pages turn every `[display] page_ms`.

use std::time::{Duration, Instant};

use super::{Analyse, Server};
use crate::screen::ScreenState;
use crate::sink::{self, Button, ButtonSource};

/// How often buttons are read while the loop waits.
const BUTTON_POLL: Duration = Duration::from_millis(30);

impl<A: Analyse> Server<A> {
    /// Use `buttons` to page through results (`serve` opens the `[buttons]` table).
    pub fn set_buttons(&mut self, buttons: Box<dyn ButtonSource>) {
        self.buttons = Some(buttons);
    }

    /// Turns the page of the result on the display if a button was pressed or,
    /// failing that, if the rotation is due at `now`; returns the page shown
    /// when it turned. Screens other than a result with several pages stay.
    pub fn turn_pages(&mut self, now: Instant) -> Option<usize> {
        let pressed = self.buttons.as_mut().and_then(|b| b.poll());
        let pages = self.pages_shown();
        if pages < 2 {
            return None;
        }
        let mut next = self.shown.clone()?;
        match pressed {
            Some(Button::NextPage) => next.next_page(pages),
            Some(Button::PreviousPage) => next.previous_page(pages),
            None if self.rotation.due(now) => next.next_page(pages),
            None => return None,
        }
        let page = next.page;
        self.show(next);
        // `show` restarted the rotation at the real time; count from `now`.
        self.rotation.restart(now);
        Some(page)
    }

    /// Pages of the result on the display (0: no result is shown).
    fn pages_shown(&self) -> usize {
        match &self.shown {
            Some(s) if s.state == ScreenState::Result => sink::page_count(s, self.layout),
            _ => 0,
        }
    }

    /// Waits up to `wait` for the receiver to keep an instance, turning pages
    /// meanwhile.
    pub(super) fn wait(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        loop {
            let now = Instant::now();
            self.turn_pages(now);
            if now >= until {
                return;
            }
            let mut slice = until - now;
            if self.buttons.is_some() {
                slice = slice.min(BUTTON_POLL);
            }
            if let Some(due) = self
                .rotation
                .until_due(now)
                .filter(|_| self.pages_shown() > 1)
            {
                slice = slice.min(due.max(Duration::from_millis(1)));
            }
            if self.wake.recv_timeout(slice).is_ok() {
                return;
            }
        }
    }
}
