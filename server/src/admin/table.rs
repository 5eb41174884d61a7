//! Aligned text tables for the list and describe commands: a header row in capitals, columns
//! two spaces apart, numbers right-aligned, no trailing spaces. Widths count characters, so a
//! non-ASCII topic or client id does not shift the columns; control characters in a cell are
//! escaped so a client id cannot break the layout.

/// Column separator.
const GAP: &str = "  ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        assert!(!columns.is_empty(), "a table has columns");
        Self {
            headers: columns.iter().map(|(header, _)| *header).collect(),
            aligns: columns.iter().map(|(_, align)| *align).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it has one cell per column.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.headers.len(), "a row has one cell per column");
        self.rows.push(cells.into_iter().map(|cell| escape_controls(&cell)).collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header and every row, each line ending in a newline.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|column| {
                let cells = self.rows.iter().map(|row| row[column].chars().count());
                cells.chain([self.headers[column].len()]).max().unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|header| header.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (column, cell) in row.iter().enumerate() {
                if column > 0 {
                    line.push_str(GAP);
                }
                let padding = " ".repeat(widths[column] - cell.chars().count());
                match self.aligns[column] {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&padding);
                    }
                    Align::Right => {
                        line.push_str(&padding);
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `name  value` lines with the values aligned, for the head of a describe.
pub fn properties(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(name, _)| name.chars().count()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(name, value)| {
            let line = format!("{name:<width$}{GAP}{}", escape_controls(value));
            format!("{}\n", line.trim_end())
        })
        .collect()
}

fn escape_controls(cell: &str) -> String {
    if cell.chars().any(char::is_control) {
        cell.chars().map(|character| character.escape_debug().to_string()).collect()
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_numbers_are_right_aligned() {
        let mut table = Table::new(&[("TOPIC", Align::Left), ("PARTITIONS", Align::Right), ("ID", Align::Left)]);
        table.row(vec!["orders".into(), "12".into(), "a".into()]);
        table.row(vec!["x".into(), "3".into(), "bcd".into()]);
        assert_eq!(
            table.render(),
            "TOPIC   PARTITIONS  ID\n\
             orders          12  a\n\
             x                3  bcd\n"
        );
    }

    #[test]
    fn no_line_ends_in_spaces_even_with_empty_cells() {
        let mut table = Table::new(&[("A", Align::Left), ("LONG HEADER", Align::Left)]);
        table.row(vec!["value".into(), String::new()]);
        for line in table.render().lines() {
            assert_eq!(line, line.trim_end(), "trailing spaces in {line:?}");
        }
        assert_eq!(table.render(), "A      LONG HEADER\nvalue\n");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut table = Table::new(&[("NAME", Align::Left), ("N", Align::Right)]);
        table.row(vec!["größe".into(), "1".into()]);
        table.row(vec!["ab".into(), "22".into()]);
        assert_eq!(table.render(), "NAME    N\ngröße   1\nab     22\n");
    }

    #[test]
    fn control_characters_are_escaped_not_printed() {
        let mut table = Table::new(&[("CLIENT ID", Align::Left), ("HOST", Align::Left)]);
        table.row(vec!["evil\nclient\t".into(), "/127.0.0.1".into()]);
        let rendered = table.render();
        assert_eq!(rendered.lines().count(), 2, "{rendered}");
        assert!(rendered.contains("evil\\nclient\\t  /127.0.0.1"), "{rendered}");
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let table = Table::new(&[("GROUP", Align::Left), ("STATE", Align::Left)]);
        assert!(table.is_empty());
        assert_eq!(table.render(), "GROUP  STATE\n");
    }

    #[test]
    fn properties_align_their_values() {
        let text = properties(&[("topic", "orders".into()), ("partitions", "3".into()), ("id", String::new())]);
        assert_eq!(text, "topic       orders\npartitions  3\nid\n");
    }
}
