//! Where things go on the screen, as a pure function of its size. Drawing uses it, and so does
//! the model, to know how many rows a page is and which row a mouse click hit.

use ratatui::layout::Rect;

/// The four bands of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// Agent, cluster size, connection state.
    pub header: Rect,
    /// The flash message (errors and confirmations), or where we are.
    pub flash: Rect,
    /// The current view, in a bordered block.
    pub body: Rect,
    /// Key hints, or the `/` and `:` input line.
    pub footer: Rect,
}

pub fn areas(size: Rect) -> Areas {
    let row = |y: u16, height: u16| Rect {
        x: size.x,
        y,
        width: size.width,
        height,
    };
    let h = size.height;
    Areas {
        header: row(size.y, h.min(1)),
        flash: row(size.y + 1.min(h), h.saturating_sub(1).min(1)),
        body: row(size.y + 2.min(h), h.saturating_sub(3)),
        footer: row(size.y + h.saturating_sub(1), h.min(1)),
    }
}

/// Inside the body's border.
pub fn body_inner(size: Rect) -> Rect {
    let body = areas(size).body;
    Rect {
        x: body.x.saturating_add(1),
        y: body.y.saturating_add(1),
        width: body.width.saturating_sub(2),
        height: body.height.saturating_sub(2),
    }
}

/// The data rows of a table view (below its column header).
pub fn table_rows(size: Rect) -> Rect {
    let inner = body_inner(size);
    Rect {
        y: inner.y.saturating_add(1),
        height: inner.height.saturating_sub(1),
        ..inner
    }
}

/// Columns the logs' gutter (the stderr mark and a space) takes.
pub const LOG_GUTTER: u16 = 2;

/// The log text area (right of the gutter).
pub fn log_text(size: Rect) -> Rect {
    let inner = body_inner(size);
    Rect {
        x: inner.x.saturating_add(LOG_GUTTER),
        width: inner.width.saturating_sub(LOG_GUTTER),
        ..inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_the_screen_at_80x24() {
        let a = areas(Rect::new(0, 0, 80, 24));
        assert_eq!((a.header.y, a.flash.y, a.body.y, a.footer.y), (0, 1, 2, 23));
        assert_eq!(a.body.height, 21);
        assert_eq!(table_rows(Rect::new(0, 0, 80, 24)).height, 18);
        assert_eq!(log_text(Rect::new(0, 0, 80, 24)).width, 76);
        // Tiny terminals do not underflow.
        let a = areas(Rect::new(0, 0, 5, 1));
        assert_eq!(a.body.height, 0);
    }
}
