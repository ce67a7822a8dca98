//! `branchline dues …`: the dues ledger (党费): payments, spending, the
//! public ledger, the reminder list, a member's own dues, and exports.
//!
//! People type and read amounts in yuan with two decimals; the ledger keeps
//! whole fen, so `30.00` is stored as 3000 and no amount is ever a float.
//! Every check a typed value can fail is made before the store is touched,
//! so a refused command leaves no empty ledger behind.

use std::ops::RangeInclusive;

use branchline_core::model::Date;
use branchline_core::store::branch_work::{DuesLedgerView, MemberDues, PaymentRow};
use branchline_core::{EntryId, MemberId};
use chrono::Datelike as _;
use serde::Serialize;

use crate::cli::DuesCommand;
use crate::export::{self, Cell, Table};
use crate::failure::{Failure, Result};
use crate::home::{Home, prefix_matches, unique};
use crate::output::{Lang, Out, Table as Screen, or_dash, short};
use crate::today;
use crate::words::{self, yuan};

/// The most one amount may be: ten million yuan, as the ledger allows.
const MAX_FEN: i64 = 1_000_000_000;

/// Yuan as people type them (`30`, `30.5`, `30.00`) in fen. `zero` allows
/// 0.00 (a member exempt from dues); a payment or spending must be more.
pub fn parse_yuan(text: &str, zero: bool) -> Result<i64> {
    let text = text.trim();
    let bad = || {
        Failure::invalid(
            "input.invalid",
            format!("{text:?} is not an amount in yuan; write it like 30.00"),
        )
        .zh(format!("“{text}”不是以元为单位的金额；请写成 30.00 这样"))
    };
    if text.starts_with('-') {
        return Err(Failure::invalid(
            "input.invalid",
            format!("an amount cannot be negative: {text}"),
        )
        .zh(format!("金额不能为负数：{text}")));
    }
    let (whole, cents) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(cents) || cents.len() > 2 || whole.len() > 9 {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let cents: i64 = format!("{cents:0<2}").parse().map_err(|_| bad())?;
    let fen = whole * 100 + cents;
    if fen > MAX_FEN {
        return Err(bad());
    }
    if fen == 0 && !zero {
        return Err(Failure::invalid(
            "input.invalid",
            format!("an amount must be more than zero: {text}"),
        )
        .zh(format!("金额必须大于零：{text}")));
    }
    Ok(fen)
}

/// Months as people type them: one (`4`) or a run (`1-3`), within 1 to 12.
pub fn parse_months(text: &str) -> Result<RangeInclusive<u32>> {
    let bad = || {
        Failure::invalid(
            "input.invalid",
            format!("months are 1 to 12, one (4) or a run from first to last (1-3): {text:?}"),
        )
        .zh(format!(
            "月份须在 1 到 12 之间，写一个月（4）或从前到后的连续月份（1-3）：“{text}”"
        ))
    };
    let (first, last) = text.trim().split_once('-').unwrap_or((text, text));
    let first: u32 = first.trim().parse().map_err(|_| bad())?;
    let last: u32 = last.trim().parse().map_err(|_| bad())?;
    if !(1..=12).contains(&first) || !(first..=12).contains(&last) {
        return Err(bad());
    }
    Ok(first..=last)
}

/// This year, in the device's time zone.
pub fn this_year() -> i64 {
    i64::from(today().0.year())
}

fn months_words(months: &RangeInclusive<u32>) -> String {
    words::months(&months.clone().collect::<Vec<_>>())
}

/// A payment of `year` by entry id or unique id prefix (from `dues ledger`).
fn payment(home: &Home, text: &str, year: i64) -> Result<(EntryId, Option<PaymentRow>)> {
    let view = home.store.dues_ledger_view(home.branch(), year)?;
    let found = match text.trim().parse::<EntryId>() {
        Ok(id) => id,
        Err(_) => unique(
            view.payments
                .iter()
                .filter(|p| prefix_matches(&p.entry.to_string(), text))
                .map(|p| p.entry),
            "ledger.unknown_entry",
            "payment",
            text,
        )?,
    };
    let row = view.payments.into_iter().find(|p| p.entry == found);
    Ok((found, row))
}

/// One member's dues, for `dues status`.
#[derive(Serialize)]
struct StatusView {
    year: i64,
    as_of: String,
    #[serde(flatten)]
    dues: MemberDues,
    payments: Vec<PaymentRow>,
}

/// Runs a `dues` subcommand.
pub fn run(home: &mut Home, command: DuesCommand, out: Out) -> Result<()> {
    let branch = home.branch();
    match command {
        DuesCommand::Pay {
            member,
            months,
            amount,
            on,
            year,
        } => {
            home.require_committee("keep the dues ledger")?;
            let member = home.member(&member)?;
            let months = parse_months(&months)?;
            let amount = amount.map(|a| parse_yuan(&a, false)).transpose()?;
            let on = on.unwrap_or_else(today);
            let year = year.unwrap_or_else(|| i64::from(on.0.year()));
            let result =
                home.store
                    .record_dues_payment(branch, member, year, months.clone(), amount, on);
            let id = match result {
                Err(branchline_core::Error::EmptyField { .. }) if amount.is_none() => {
                    return Err(Failure::invalid(
                        "input.empty",
                        "the branch sets no monthly dues and the member has no amount of \
                         their own: give --amount, or set the branch's with \
                         `branchline branch set-dues`",
                    )
                    .zh(
                        "支部尚未设定每月党费，该党员也没有单独的金额：请用 --amount 给出，\
                         或先用 branchline branch set-dues 设定",
                    ));
                }
                other => home.named(other)?,
            };
            let paid = home
                .store
                .dues_ledger_view(branch, year)?
                .payments
                .into_iter()
                .find(|p| p.entry == id)
                .map_or(0, |p| p.amount_fen);
            let name = home.member_name(member);
            let months = months_words(&months);
            out.created(
                id,
                out.say(
                    format!(
                        "{name} paid {} yuan for {year} months {months} on {on}",
                        yuan(paid)
                    ),
                    format!(
                        "{name}于 {on} 缴纳 {year} 年 {months} 月党费 {} 元",
                        yuan(paid)
                    ),
                ),
            );
        }
        DuesCommand::Void {
            entry,
            reason,
            year,
        } => {
            home.require_committee("keep the dues ledger")?;
            let (entry, row) = payment(home, &entry, year.unwrap_or_else(this_year))?;
            home.store.void_dues_payment(entry, &reason, today())?;
            let what = match &row {
                Some(p) => out.say(
                    format!(
                        "{}'s payment of {} yuan (months {})",
                        p.name,
                        yuan(p.amount_fen),
                        words::months(&(p.first_month..=p.last_month).collect::<Vec<_>>())
                    ),
                    format!(
                        "{}缴纳的 {} 元（{} 月）",
                        p.name,
                        yuan(p.amount_fen),
                        words::months(&(p.first_month..=p.last_month).collect::<Vec<_>>())
                    ),
                ),
                None => out.say(
                    format!("payment {}", short(entry)),
                    format!("缴费记录 {}", short(entry)),
                ),
            };
            out.done(out.say(
                format!("{what} voided: {}", reason.trim()),
                format!("{what}已作废：{}", reason.trim()),
            ));
        }
        DuesCommand::SetAmount {
            member,
            yuan: amount,
            default,
            year,
        } => {
            home.require_committee("keep the dues ledger")?;
            let member = home.member(&member)?;
            let fen = match (default, amount) {
                (true, _) | (false, None) => None,
                (false, Some(text)) => Some(parse_yuan(&text, true)?),
            };
            let year = year.unwrap_or_else(this_year);
            let result = home.store.set_member_dues(branch, member, year, fen);
            home.named(result)?;
            let name = home.member_name(member);
            let sentence = match fen {
                Some(fen) => out.say(
                    format!("{name} pays {} yuan a month in {year}", yuan(fen)),
                    format!("{name} {year} 年每月缴纳 {} 元", yuan(fen)),
                ),
                None => {
                    let branch_fen = home.store.profile(branch)?.monthly_dues_fen;
                    out.say(
                        format!(
                            "{name} pays the branch's {} yuan a month in {year}",
                            yuan(branch_fen)
                        ),
                        format!(
                            "{name} {year} 年按支部统一标准每月缴纳 {} 元",
                            yuan(branch_fen)
                        ),
                    )
                }
            };
            out.done(sentence);
        }
        DuesCommand::Spend {
            yuan: amount,
            category,
            purpose,
            approved_by,
            on,
        } => {
            home.require_committee("keep the dues ledger")?;
            let fen = parse_yuan(&amount, false)?;
            if purpose.trim().is_empty() {
                return Err(branchline_core::Error::EmptyField { field: "purpose" }.into());
            }
            if approved_by.trim().is_empty() {
                return Err(branchline_core::Error::EmptyField {
                    field: "approved by",
                }
                .into());
            }
            let on = on.unwrap_or_else(today);
            let id = home.store.record_dues_spending(
                branch,
                fen,
                category,
                &purpose,
                &approved_by,
                on,
            )?;
            let (purpose, by) = (purpose.trim(), approved_by.trim());
            out.created(
                id,
                out.say(
                    format!(
                        "spent {} yuan on {}: {purpose} (approved by {by}, {on})",
                        yuan(fen),
                        words::spending_category(category, Lang::En)
                    ),
                    format!(
                        "已登记支出 {} 元，用于{}：{purpose}（{by}批准，{on}）",
                        yuan(fen),
                        words::spending_category(category, Lang::Zh)
                    ),
                ),
            );
        }
        DuesCommand::Ledger { year } => {
            let year = year.unwrap_or_else(this_year);
            let view = home.store.dues_ledger_view(branch, year)?;
            out.show(&view, || print_ledger(home, &view, out));
        }
        DuesCommand::Overdue { as_of } => {
            let as_of = as_of.unwrap_or_else(today);
            let rows = home.store.overdue_dues(branch, as_of)?;
            out.show(&rows, || {
                let l = |en, zh| out.lang.pick(en, zh);
                println!(
                    "{}",
                    out.say(
                        format!("Dues overdue on {as_of}"),
                        format!("截至 {as_of} 欠缴党费")
                    )
                );
                let mut table = Screen::new(match out.lang {
                    Lang::En => ["name", "months overdue", "owed", "a month", "paid"],
                    Lang::Zh => ["姓名", "欠缴月份", "欠缴金额", "每月", "已缴"],
                });
                for m in &rows {
                    table.row(vec![
                        m.name.clone(),
                        words::months(&m.overdue_months),
                        yuan(m.owed_fen),
                        yuan(m.monthly_fen),
                        yuan(m.paid_fen),
                    ]);
                }
                table.print(l("nobody is behind with their dues", "没有欠缴党费的党员"));
            });
        }
        DuesCommand::Status {
            member,
            year,
            as_of,
        } => {
            let member = match member {
                Some(text) => home.member(&text)?,
                None => home.own_member().ok_or_else(|| {
                    Failure::invalid(
                        "input.member_required",
                        "this device belongs to no member; name one: branchline dues status <member>",
                    )
                    .zh("此设备不属于任何党员；请指定：branchline dues status <党员>")
                })?,
            };
            status(home, member, year, as_of, out)?;
        }
        DuesCommand::Export {
            format,
            out: dir,
            year,
            bom,
        } => {
            let year = year.unwrap_or_else(this_year);
            let view = home.store.dues_ledger_view(branch, year)?;
            let tables = ledger_tables(&view, out.lang);
            let files = export::write(
                &dir,
                format,
                bom,
                &tables,
                &format!("dues-ledger-{year}.xlsx"),
            )?;
            print_files(&files, out);
        }
    }
    Ok(())
}

/// Prints the files an export wrote, or lists them for scripts.
pub fn print_files(files: &[std::path::PathBuf], out: Out) {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    out.show(&serde_json::json!({ "files": names }), || {
        println!(
            "{}",
            out.say(
                format!("wrote {} files:", names.len()),
                format!("已写入 {} 个文件：", names.len())
            )
        );
        for name in &names {
            println!("  {name}");
        }
    });
}

fn status(
    home: &Home,
    member: MemberId,
    year: Option<i64>,
    as_of: Option<Date>,
    out: Out,
) -> Result<()> {
    let branch = home.branch();
    let year = year.unwrap_or_else(this_year);
    let as_of = as_of.unwrap_or_else(today);
    let name = home.member_name(member);
    let dues = home
        .store
        .dues_overview(branch, year, as_of)?
        .into_iter()
        .find(|m| m.member == member)
        .unwrap_or_else(|| MemberDues {
            member,
            name: name.clone(),
            monthly_fen: 0,
            owing_months: Vec::new(),
            paid_months: Vec::new(),
            overdue_months: Vec::new(),
            owed_fen: 0,
            paid_fen: 0,
        });
    let payments: Vec<PaymentRow> = home
        .store
        .dues_ledger_view(branch, year)?
        .payments
        .into_iter()
        .filter(|p| p.member == member)
        .collect();
    let view = StatusView {
        year,
        as_of: as_of.to_string(),
        dues,
        payments,
    };
    out.show(&view, || {
        let l = |en, zh| out.lang.pick(en, zh);
        let d = &view.dues;
        println!(
            "{}",
            out.say(
                format!("{name} — dues {year}, as of {as_of}"),
                format!("{name} — {year} 年党费（截至 {as_of}）")
            )
        );
        if d.owing_months.is_empty() {
            println!(
                "{}",
                out.say(
                    format!("{name} owes no dues in {year}"),
                    format!("{name} {year} 年无需缴纳党费")
                )
            );
        } else {
            println!("{}: {}", l("a month", "每月"), yuan(d.monthly_fen));
            println!(
                "{}: {}",
                l("months owed", "应缴月份"),
                words::months(&d.owing_months)
            );
        }
        println!(
            "{}: {}",
            l("months paid", "已缴月份"),
            words::months(&d.paid_months)
        );
        println!("{}: {}", l("paid", "已缴金额"), yuan(d.paid_fen));
        if d.overdue_months.is_empty() {
            println!("{}", l("nothing overdue", "没有欠缴"));
        } else {
            println!(
                "{}: {} ({} {})",
                l("OVERDUE", "欠缴"),
                words::months(&d.overdue_months),
                yuan(d.owed_fen),
                l("yuan", "元")
            );
        }
        for p in &view.payments {
            println!(
                "  {}  {}  {}  {}{}",
                p.paid_on,
                words::months(&(p.first_month..=p.last_month).collect::<Vec<_>>()),
                yuan(p.amount_fen),
                short(p.entry),
                voided(p, out)
            );
        }
    });
    Ok(())
}

/// `  VOIDED: why` for a voided payment, else nothing.
fn voided(p: &PaymentRow, out: Out) -> String {
    match (&p.voided_on, &p.void_reason) {
        (Some(_), reason) => out.say(
            format!("  VOIDED: {}", or_dash(reason.as_deref())),
            format!("  已作废：{}", or_dash(reason.as_deref())),
        ),
        (None, _) => String::new(),
    }
}

fn print_ledger(home: &Home, view: &DuesLedgerView, out: Out) {
    let l = |en, zh| out.lang.pick(en, zh);
    let branch = home.branch_name(home.branch());
    let year = view.year;
    println!(
        "{}",
        out.say(
            format!(
                "{branch} — dues ledger {year} (monthly dues {} yuan)",
                yuan(view.monthly_default_fen)
            ),
            format!(
                "{branch} — {year} 年党费公示（每月 {} 元）",
                yuan(view.monthly_default_fen)
            ),
        )
    );
    println!("\n{}", l("Payments", "缴纳"));
    let mut table = Screen::new(match out.lang {
        Lang::En => ["entry", "paid on", "name", "months", "amount", ""],
        Lang::Zh => ["编号", "缴纳日期", "姓名", "月份", "金额", ""],
    });
    for p in &view.payments {
        table.row(vec![
            short(p.entry),
            p.paid_on.to_string(),
            p.name.clone(),
            words::months(&(p.first_month..=p.last_month).collect::<Vec<_>>()),
            yuan(p.amount_fen),
            voided(p, out).trim().to_owned(),
        ]);
    }
    table.print(l("no payments", "没有缴纳记录"));
    println!("\n{}", l("Spending", "支出"));
    let mut table = Screen::new(match out.lang {
        Lang::En => [
            "entry",
            "spent on",
            "category",
            "purpose",
            "approved by",
            "amount",
        ],
        Lang::Zh => ["编号", "支出日期", "类别", "用途", "批准", "金额"],
    });
    for s in &view.spending {
        table.row(vec![
            short(s.entry),
            s.spent_on.to_string(),
            words::spending_category(s.category, out.lang).to_owned(),
            s.purpose.clone(),
            s.approved_by.clone(),
            yuan(s.amount_fen),
        ]);
    }
    table.print(l("no spending", "没有支出"));
    println!(
        "\n{}",
        out.say(
            format!(
                "collected {}  spent {}  balance {} yuan",
                yuan(view.collected_fen),
                yuan(view.spent_fen),
                yuan(view.balance_fen)
            ),
            format!(
                "收缴 {} 元，支出 {} 元，结余 {} 元",
                yuan(view.collected_fen),
                yuan(view.spent_fen),
                yuan(view.balance_fen)
            ),
        )
    );
}

/// The public ledger as tables: payments, spending, and the totals.
fn ledger_tables(view: &DuesLedgerView, lang: Lang) -> [Table; 3] {
    let t = |en, zh| lang.pick(en, zh);
    let year = view.year;
    let mut payments = Table::new(
        format!("dues-payments-{year}.csv"),
        t("Payments", "党费缴纳"),
        &[
            (t("entry", "编号"), 12.0),
            (t("paid on", "缴纳日期"), 12.0),
            (t("name", "姓名"), 14.0),
            (t("first month", "起始月"), 10.0),
            (t("last month", "截止月"), 10.0),
            (t("amount (yuan)", "金额（元）"), 12.0),
            (t("voided on", "作废日期"), 12.0),
            (t("why voided", "作废原因"), 24.0),
        ],
    );
    for p in &view.payments {
        payments.rows.push(vec![
            Cell::text(p.entry.to_string()),
            Cell::Day(p.paid_on),
            Cell::text(&p.name),
            Cell::Number(f64::from(p.first_month)),
            Cell::Number(f64::from(p.last_month)),
            Cell::Yuan(p.amount_fen),
            Cell::day(p.voided_on),
            p.void_reason.as_deref().map_or(Cell::Empty, Cell::text),
        ]);
    }
    let mut spending = Table::new(
        format!("dues-spending-{year}.csv"),
        t("Spending", "党费支出"),
        &[
            (t("entry", "编号"), 12.0),
            (t("spent on", "支出日期"), 12.0),
            (t("category", "类别"), 18.0),
            (t("purpose", "用途"), 28.0),
            (t("approved by", "批准"), 14.0),
            (t("amount (yuan)", "金额（元）"), 12.0),
        ],
    );
    for s in &view.spending {
        spending.rows.push(vec![
            Cell::text(s.entry.to_string()),
            Cell::Day(s.spent_on),
            Cell::text(words::spending_category(s.category, lang)),
            Cell::text(&s.purpose),
            Cell::text(&s.approved_by),
            Cell::Yuan(s.amount_fen),
        ]);
    }
    let mut summary = Table::new(
        format!("dues-summary-{year}.csv"),
        t("Summary", "汇总"),
        &[(t("item", "项目"), 20.0), (t("yuan", "金额（元）"), 14.0)],
    );
    for (item, fen) in [
        (t("monthly dues", "每月党费"), view.monthly_default_fen),
        (t("collected", "收缴"), view.collected_fen),
        (t("spent", "支出"), view.spent_fen),
        (t("balance", "结余"), view.balance_fen),
    ] {
        summary.rows.push(vec![Cell::text(item), Cell::Yuan(fen)]);
    }
    [payments, spending, summary]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_are_read_to_the_fen() {
        assert_eq!(parse_yuan("30", false).unwrap(), 3000);
        assert_eq!(parse_yuan("30.5", false).unwrap(), 3050);
        assert_eq!(parse_yuan(" 30.05 ", false).unwrap(), 3005);
        assert_eq!(parse_yuan("0", true).unwrap(), 0);
        for bad in [
            "-5.00",
            "0.00",
            "abc",
            "1.234",
            "",
            ".5",
            "1e3",
            "99999999999",
        ] {
            let e = parse_yuan(bad, false).unwrap_err();
            assert_eq!(e.code, "input.invalid", "{bad}");
        }
    }

    #[test]
    fn months_are_one_or_a_run_within_the_year() {
        assert_eq!(parse_months("4").unwrap(), 4..=4);
        assert_eq!(parse_months("1-3").unwrap(), 1..=3);
        for bad in ["13-14", "0", "5-4", "x", "1-", "12-13"] {
            assert_eq!(
                parse_months(bad).unwrap_err().code,
                "input.invalid",
                "{bad}"
            );
        }
    }
}
