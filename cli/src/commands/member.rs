//! `branchline member …`: the roster.

use branchline_core::model::{MemberUpdate, NewMember};
use branchline_core::store::query::MemberFilter;

use crate::cli::{MemberCommand, MemberFields};
use crate::failure::Result;
use crate::home::Home;
use crate::output::{Lang, Out, Table, or_dash, short};
use crate::{today, words};

/// Runs a `member` subcommand.
pub fn run(home: &mut Home, command: MemberCommand, out: Out) -> Result<()> {
    let branch = home.branch();
    if !matches!(command, MemberCommand::List { .. }) {
        home.require_roster_editor()?;
    }
    match command {
        MemberCommand::Add { name, fields } => {
            let gender = fields.gender;
            let new = NewMember {
                name: name.clone(),
                gender,
                birth_date: fields.birth,
                joined: fields.joined,
                category: fields.category,
                group: fields.group,
                post: fields.post,
                phone: fields.phone,
            };
            let result = home.store.add_member(branch, new);
            let id = home.named(result)?;
            // Without --gender the roster records "not recorded", never a
            // guess; say so, and how to fill it in.
            let mut sentence = out.say(
                format!("added {name} to the roster"),
                format!("已将{name}加入花名册"),
            );
            if gender.is_none() {
                sentence.push_str(&out.say(
                    format!(
                        "; gender not recorded (add it with: branchline member update \"{name}\" --gender male|female)"
                    ),
                    format!(
                        "；性别未登记（可用 branchline member update \"{name}\" --gender male|female 补上）"
                    ),
                ));
            }
            out.created(id, sentence);
        }
        MemberCommand::Update {
            member,
            name,
            fields,
        } => {
            let id = home.member(&member)?;
            let before = home.member_name(id);
            let MemberFields {
                gender,
                birth,
                joined,
                category,
                group,
                post,
                phone,
            } = fields;
            let update = MemberUpdate {
                name,
                gender,
                birth_date: birth,
                joined,
                category,
                group,
                post,
                phone,
            };
            let result = home.store.update_member(id, update);
            home.named(result)?;
            out.done(out.say(
                format!("{before}'s roster entry updated"),
                format!("{before}的花名册信息已更新"),
            ));
        }
        MemberCommand::TransferOut { member, on } => {
            let id = home.member(&member)?;
            let name = home.member_name(id);
            let on = on.unwrap_or_else(today);
            let result = home.store.transfer_out(id, on);
            home.named(result)?;
            out.done(out.say(
                format!("{name} transferred out on {on}"),
                format!("{name}已于 {on} 转出"),
            ));
        }
        MemberCommand::Deceased { member, on } => {
            let id = home.member(&member)?;
            let name = home.member_name(id);
            let on = on.unwrap_or_else(today);
            let result = home.store.mark_deceased(id, on);
            home.named(result)?;
            out.done(out.say(
                format!("{name} recorded as deceased on {on}"),
                format!("已登记{name}于 {on} 去世"),
            ));
        }
        MemberCommand::List {
            category,
            status,
            group,
            name,
        } => {
            let filter = MemberFilter {
                category,
                status,
                group,
                name_contains: name,
            };
            let rows = home.store.list_members(branch, &filter)?;
            out.show(&rows, || {
                let mut table = Table::new(match out.lang {
                    Lang::En => [
                        "id", "name", "gender", "born", "joined", "category", "group", "post",
                        "phone", "status",
                    ],
                    Lang::Zh => [
                        "编号", "姓名", "性别", "出生", "入党", "类别", "小组", "职务", "电话",
                        "状态",
                    ],
                });
                for m in &rows {
                    table.row(vec![
                        short(m.id),
                        m.name.clone(),
                        words::value(m.gender.as_str(), out.lang),
                        or_dash(m.birth_date),
                        or_dash(m.joined),
                        words::value(m.category.as_str(), out.lang),
                        or_dash(m.group.as_deref()),
                        or_dash(m.post.as_deref()),
                        or_dash(m.phone.as_deref()),
                        words::value(m.status.as_str(), out.lang),
                    ]);
                }
                table.print(out.lang.pick("no members", "没有成员"));
            });
        }
    }
    Ok(())
}
