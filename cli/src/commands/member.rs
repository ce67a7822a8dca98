//! `branchline member …`: the roster.

use branchline_core::model::{MemberUpdate, NewMember};
use branchline_core::store::query::MemberFilter;

use crate::cli::{MemberCommand, MemberFields};
use crate::failure::Result;
use crate::home::Home;
use crate::output::{Out, Table, or_dash, short};
use crate::today;

/// Runs a `member` subcommand.
pub fn run(home: &mut Home, command: MemberCommand, out: Out) -> Result<()> {
    let branch = home.branch();
    if !matches!(command, MemberCommand::List { .. }) {
        home.require_roster_editor()?;
    }
    match command {
        MemberCommand::Add { name, fields } => {
            let new = NewMember {
                name: name.clone(),
                gender: fields.gender,
                birth_date: fields.birth,
                joined: fields.joined,
                category: fields.category,
                group: fields.group,
                post: fields.post,
                phone: fields.phone,
            };
            let id = home.store.add_member(branch, new)?;
            out.created(
                id,
                out.say(
                    format!("added {name} to the roster"),
                    format!("已将{name}加入花名册"),
                ),
            );
        }
        MemberCommand::Update {
            member,
            name,
            fields,
        } => {
            let id = home.member(&member)?;
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
            home.store.update_member(id, update)?;
            out.done(out.say(
                format!("member {} updated", short(id)),
                format!("成员 {} 已更新", short(id)),
            ));
        }
        MemberCommand::TransferOut { member, on } => {
            let id = home.member(&member)?;
            home.store.transfer_out(id, on.unwrap_or_else(today))?;
            out.done(out.say(
                format!("member {} transferred out", short(id)),
                format!("成员 {} 已转出", short(id)),
            ));
        }
        MemberCommand::Deceased { member, on } => {
            let id = home.member(&member)?;
            home.store.mark_deceased(id, on.unwrap_or_else(today))?;
            out.done(out.say(
                format!("member {} recorded as deceased", short(id)),
                format!("成员 {} 已登记为去世", short(id)),
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
                    crate::output::Lang::En => [
                        "id", "name", "gender", "born", "joined", "category", "group", "post",
                        "phone", "status",
                    ],
                    crate::output::Lang::Zh => [
                        "编号", "姓名", "性别", "出生", "入党", "类别", "小组", "职务", "电话",
                        "状态",
                    ],
                });
                for m in &rows {
                    table.row(vec![
                        short(m.id),
                        m.name.clone(),
                        m.gender.to_string(),
                        or_dash(m.birth_date),
                        or_dash(m.joined),
                        m.category.to_string(),
                        or_dash(m.group.as_deref()),
                        or_dash(m.post.as_deref()),
                        or_dash(m.phone.as_deref()),
                        m.status.to_string(),
                    ]);
                }
                table.print(out.lang.pick("no members", "没有成员"));
            });
        }
    }
    Ok(())
}
