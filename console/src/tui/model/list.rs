//! A cursor in a list and the first row shown, kept consistent with the list's length and the
//! number of rows on screen.

/// Where the cursor is and which row is at the top of the viewport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListState {
    pub cursor: usize,
    pub offset: usize,
}

impl ListState {
    /// Keeps the cursor inside `len` and on screen in `rows` rows, and never leaves blank rows
    /// below the last item while there are items above the top.
    pub fn clamp(&mut self, len: usize, rows: usize) {
        let rows = rows.max(1);
        if len == 0 {
            *self = Self::default();
            return;
        }
        self.cursor = self.cursor.min(len - 1);
        if self.cursor < self.offset {
            self.offset = self.cursor;
        } else if self.cursor >= self.offset + rows {
            self.offset = self.cursor + 1 - rows;
        }
        self.offset = self.offset.min(len.saturating_sub(rows));
    }

    /// Moves the cursor by `delta` rows, stopping at either end.
    pub fn move_by(&mut self, delta: isize, len: usize, rows: usize) {
        self.cursor = self.cursor.saturating_add_signed(delta);
        self.clamp(len, rows);
    }

    pub fn to_top(&mut self, len: usize, rows: usize) {
        self.cursor = 0;
        self.clamp(len, rows);
    }

    pub fn to_bottom(&mut self, len: usize, rows: usize) {
        self.cursor = len.saturating_sub(1);
        self.clamp(len, rows);
    }

    /// Puts the cursor on the row shown at `row` (0 = the top of the viewport), if there is one.
    pub fn click(&mut self, row: usize, len: usize, rows: usize) -> bool {
        let index = self.offset + row;
        if row < rows && index < len {
            self.cursor = index;
            self.clamp(len, rows);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_stays_on_screen_and_in_range() {
        let mut l = ListState::default();
        l.move_by(15, 100, 10);
        assert_eq!((l.cursor, l.offset), (15, 6));
        l.move_by(-20, 100, 10);
        assert_eq!((l.cursor, l.offset), (0, 0));
        l.to_bottom(100, 10);
        assert_eq!((l.cursor, l.offset), (99, 90));
        // The list shrinks: the cursor follows, and no blank rows are left at the bottom.
        l.clamp(12, 10);
        assert_eq!((l.cursor, l.offset), (11, 2));
        l.clamp(0, 10);
        assert_eq!(l, ListState::default());
    }

    #[test]
    fn click_selects_the_row_under_the_pointer() {
        let mut l = ListState {
            cursor: 20,
            offset: 15,
        };
        assert!(l.click(3, 100, 10));
        assert_eq!(l.cursor, 18);
        assert!(!l.click(3, 17, 10), "no row there");
    }
}
