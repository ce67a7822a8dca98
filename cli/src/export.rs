//! Tables the desktop writes for people to hand on: the public dues ledger,
//! the points ranking, the committee's roll-up, as CSV files and XLSX
//! workbooks.
//!
//! The files are written as `branchline-server export` writes its own: one
//! CSV file per table (days as `YYYY-MM-DD`, amounts as yuan with two
//! decimals, optionally after a UTF-8 byte order mark for Excel) and one
//! workbook with a sheet per table (bold frozen headers, real dates and
//! numbers). Everything is written into a staging directory inside the
//! output directory and renamed into place only once every file is
//! complete, so a failure leaves no half-written file behind.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use branchline_core::model::Date;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook, Worksheet};

use crate::cli::ExportFormat;
use crate::failure::{EXIT_FAILURE, Failure, Result};

/// One cell of a table.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A calendar day.
    Day(Date),
    /// A number.
    Number(f64),
    /// Money, in fen, shown as yuan.
    Yuan(i64),
    /// A share, 0 to 1, shown as a percentage.
    Share(f64),
    /// Nothing.
    Empty,
}

impl Cell {
    /// A text cell.
    pub fn text(value: impl Into<String>) -> Cell {
        Cell::Text(value.into())
    }

    /// A share, or nothing when there is nothing to measure.
    pub fn share(value: Option<f64>) -> Cell {
        value.map_or(Cell::Empty, Cell::Share)
    }

    /// A day, or nothing.
    pub fn day(value: Option<Date>) -> Cell {
        value.map_or(Cell::Empty, Cell::Day)
    }

    /// The cell as CSV text.
    fn csv(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            Cell::Day(day) => day.to_string(),
            Cell::Number(n) => n.to_string(),
            Cell::Yuan(fen) => crate::words::yuan(*fen),
            Cell::Share(share) => format!("{:.1}%", share * 100.0),
            Cell::Empty => String::new(),
        }
    }
}

/// One table: a CSV file and a worksheet.
#[derive(Clone, Debug)]
pub struct Table {
    /// The CSV file's name.
    pub file: String,
    /// The worksheet's name (at most 31 characters).
    pub sheet: String,
    /// Headers with column widths, in characters.
    pub columns: Vec<(String, f64)>,
    /// The rows.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these headers and widths.
    pub fn new(file: impl Into<String>, sheet: impl Into<String>, columns: &[(&str, f64)]) -> Self {
        Self {
            file: file.into(),
            sheet: sheet.into(),
            columns: columns.iter().map(|(h, w)| ((*h).to_owned(), *w)).collect(),
            rows: Vec::new(),
        }
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new("cli.io", format!("writing {what}: {e}"), EXIT_FAILURE)
        .zh(format!("写入 {what} 出错：{e}"))
}

/// Writes `tables` into `out` as `format` asks (the CSV files, and the
/// workbook named `workbook`); returns the files written.
pub fn write(
    out: &Path,
    format: ExportFormat,
    bom: bool,
    tables: &[Table],
    workbook: &str,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| failed(&out.display().to_string(), e))?;
    let staging = tempfile::Builder::new()
        .prefix(".branchline-export-")
        .tempdir_in(out)
        .map_err(|e| failed(&out.display().to_string(), e))?;
    let mut names = Vec::new();
    if matches!(format, ExportFormat::Csv | ExportFormat::All) {
        for table in tables {
            write_csv(&staging.path().join(&table.file), table, bom)
                .map_err(|e| failed(&table.file, e))?;
            names.push(table.file.as_str());
        }
    }
    if matches!(format, ExportFormat::Xlsx | ExportFormat::All) {
        write_workbook(&staging.path().join(workbook), tables)?;
        names.push(workbook);
    }
    let mut written = Vec::new();
    for name in names {
        let target = out.join(name);
        std::fs::rename(staging.path().join(name), &target).map_err(|e| failed(name, e))?;
        written.push(target);
    }
    Ok(written)
}

fn write_csv(path: &Path, table: &Table, bom: bool) -> std::result::Result<(), csv::Error> {
    let mut file = File::create(path)?;
    if bom {
        file.write_all(b"\xEF\xBB\xBF")?;
    }
    let mut writer = csv::Writer::from_writer(file);
    writer.write_record(table.columns.iter().map(|(header, _)| header))?;
    for row in &table.rows {
        writer.write_record(row.iter().map(Cell::csv))?;
    }
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(())
}

/// Writes `tables` as one workbook at `path`, through a file beside it that
/// is renamed into place when complete.
pub fn write_workbook(path: &Path, tables: &[Table]) -> Result<()> {
    let what = path.display().to_string();
    let mut workbook = Workbook::new();
    for table in tables {
        let sheet = workbook.add_worksheet();
        fill_sheet(sheet, table).map_err(|e| failed(&what, e))?;
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| failed(&what, e))?;
    let staged = tempfile::Builder::new()
        .prefix(".branchline-")
        .suffix(".xlsx")
        .tempfile_in(&dir)
        .map_err(|e| failed(&what, e))?;
    workbook.save(staged.path()).map_err(|e| failed(&what, e))?;
    staged.persist(path).map_err(|e| failed(&what, e.error))?;
    Ok(())
}

fn fill_sheet(
    sheet: &mut Worksheet,
    table: &Table,
) -> std::result::Result<(), rust_xlsxwriter::XlsxError> {
    let bold = Format::new().set_bold();
    let day = Format::new().set_num_format("yyyy-mm-dd");
    let money = Format::new().set_num_format("0.00");
    let percent = Format::new().set_num_format("0.0%");
    sheet.set_name(&table.sheet)?;
    for (col, (header, width)) in table.columns.iter().enumerate() {
        let col = column(col)?;
        sheet.write_string_with_format(0, col, header, &bold)?;
        sheet.set_column_width(col, *width)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    for (r, row) in table.rows.iter().enumerate() {
        let r =
            u32::try_from(r + 1).map_err(|_| rust_xlsxwriter::XlsxError::RowColumnLimitError)?;
        for (col, cell) in row.iter().enumerate() {
            let col = column(col)?;
            match cell {
                Cell::Text(text) => {
                    sheet.write_string(r, col, text)?;
                }
                Cell::Day(d) => {
                    use chrono::Datelike as _;
                    let date = ExcelDateTime::from_ymd(
                        u16::try_from(d.0.year()).unwrap_or(1900),
                        d.0.month() as u8,
                        d.0.day() as u8,
                    )?;
                    sheet.write_datetime_with_format(r, col, &date, &day)?;
                }
                Cell::Number(n) => {
                    sheet.write_number(r, col, *n)?;
                }
                Cell::Yuan(fen) => {
                    sheet.write_number_with_format(r, col, *fen as f64 / 100.0, &money)?;
                }
                Cell::Share(share) => {
                    sheet.write_number_with_format(r, col, *share, &percent)?;
                }
                Cell::Empty => {}
            }
        }
    }
    Ok(())
}

fn column(index: usize) -> std::result::Result<u16, rust_xlsxwriter::XlsxError> {
    u16::try_from(index).map_err(|_| rust_xlsxwriter::XlsxError::RowColumnLimitError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_plain_text() {
        assert_eq!(Cell::Day("2026-03-01".parse().unwrap()).csv(), "2026-03-01");
        assert_eq!(Cell::Yuan(3050).csv(), "30.50");
        assert_eq!(Cell::Share(0.875).csv(), "87.5%");
        assert_eq!(Cell::Number(4.0).csv(), "4");
        assert_eq!(Cell::Empty.csv(), "");
    }

    #[test]
    fn nothing_is_left_half_written_and_the_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut table = Table::new("t.csv", "T", &[("a", 5.0), ("b", 5.0)]);
        table.rows.push(vec![Cell::text("x, y"), Cell::Yuan(100)]);
        let files = write(dir.path(), ExportFormat::All, false, &[table], "t.xlsx").unwrap();
        assert_eq!(files.len(), 2);
        let text = std::fs::read_to_string(dir.path().join("t.csv")).unwrap();
        assert_eq!(text, "a,b\n\"x, y\",1.00\n");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }
}
