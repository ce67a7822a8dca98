//! `DuesLedger`: one per branch and year, the dues (党费) ledger.
//!
//! What each member owes a month comes from the branch profile
//! ([`super::BranchProfile::monthly_dues_fen`]) unless the ledger sets the member's
//! own amount. Payments and spending are entries of maps keyed by a random
//! [`EntryId`], so a committee member collecting at a meeting offline and the
//! treasurer at home both keep theirs. An entry is never deleted: a payment recorded
//! by mistake is voided, with a reason, and stays in the public ledger. Two ledgers
//! of one year (opened on two devices offline) are read as one, as points books are.
//!
//! Amounts are whole fen (0.01 yuan), never floating point.

use std::collections::BTreeMap;

use autosurgeon::{Hydrate, Reconcile};

use super::points::check_year;
use super::scalar::{Date, vocabulary};
use super::{DocKind, FieldPath, Meta, Record, required};
use crate::error::{Error, Result};
use crate::ids::{BranchId, EntryId, MemberId};

vocabulary! {
    /// What dues may be spent on: branch work only (党费使用范围).
    SpendingCategory, "spending category" {
        /// 党员教育培训.
        Education = "education",
        /// 学习资料.
        StudyMaterials = "study_materials",
        /// 表彰先进.
        Commendation = "commendation",
        /// 慰问生活困难党员、老党员.
        HardshipSupport = "hardship_support",
        /// 支部组织生活与主题党日.
        BranchActivity = "branch_activity",
    }
}

/// Why and when a payment was voided.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Void {
    /// The day it was voided.
    pub on: Date,
    /// Why.
    pub reason: String,
}

/// Dues a member paid for a run of months of the ledger's year.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Payment {
    /// Who paid.
    pub member: MemberId,
    /// The first month paid for, 1 to 12.
    pub first_month: u32,
    /// The last month paid for, from `first_month` to 12.
    pub last_month: u32,
    /// The amount, in fen.
    pub amount_fen: i64,
    /// The day it was paid.
    pub paid_on: Date,
    /// Set when the payment was recorded by mistake.
    #[autosurgeon(missing = "Default::default")]
    pub void: Option<Void>,
}

impl Payment {
    /// The months it covers (a voided payment covers none: see [`Payment::void`]).
    pub fn months(&self) -> std::ops::RangeInclusive<u32> {
        self.first_month..=self.last_month
    }
}

/// Money spent from the branch's dues.
#[derive(Clone, Debug, PartialEq, Eq, Hydrate, Reconcile)]
pub struct Spending {
    /// The amount, in fen.
    pub amount_fen: i64,
    /// What kind of branch work it paid for.
    pub category: SpendingCategory,
    /// What exactly, in words.
    pub purpose: String,
    /// Who approved it (a name or a body, e.g. 支委会).
    pub approved_by: String,
    /// The day it was spent.
    pub spent_on: Date,
}

/// One per branch and year: amounts, payments and spending.
#[derive(Clone, Debug, PartialEq, Hydrate, Reconcile)]
pub struct DuesLedger {
    /// Document header.
    pub meta: Meta,
    /// The calendar year it covers.
    pub year: i64,
    /// Monthly amounts in fen of members who do not pay the profile's, by member id.
    #[autosurgeon(missing = "Default::default")]
    pub monthly_fen: BTreeMap<String, i64>,
    /// Payments keyed by entry id.
    #[autosurgeon(missing = "Default::default")]
    pub payments: BTreeMap<String, Payment>,
    /// Spending keyed by entry id.
    #[autosurgeon(missing = "Default::default")]
    pub spending: BTreeMap<String, Spending>,
}

/// Where the fields code outside the record reads live in a ledger.
pub mod paths {
    use super::FieldPath;

    /// [`super::DuesLedger::year`].
    pub const YEAR: FieldPath = FieldPath::new(&["year"]);
}

impl Record for DuesLedger {
    const KIND: DocKind = DocKind::DuesLedger;
    const PATHS: &'static [FieldPath] = &[paths::YEAR];

    fn meta(&self) -> &Meta {
        &self.meta
    }
}

fn check_amount(fen: i64) -> Result<()> {
    // Ten million yuan: far above any dues, far below overflow when summed.
    if (1..=1_000_000_000).contains(&fen) {
        Ok(())
    } else {
        Err(Error::invalid("amount in fen", fen.to_string()))
    }
}

impl DuesLedger {
    /// An empty ledger of `branch` for `year`.
    pub fn new(branch: BranchId, year: i64) -> Self {
        DuesLedger {
            meta: Meta::new(DocKind::DuesLedger, branch),
            year,
            monthly_fen: BTreeMap::new(),
            payments: BTreeMap::new(),
            spending: BTreeMap::new(),
        }
    }

    /// Sets what `member` pays a month, in fen; `None` goes back to the profile's.
    pub fn set_monthly(&mut self, member: MemberId, fen: Option<i64>) -> Result<()> {
        match fen {
            Some(fen) if fen < 0 => return Err(Error::invalid("amount in fen", fen.to_string())),
            Some(fen) => self.monthly_fen.insert(member.to_string(), fen),
            None => self.monthly_fen.remove(&member.to_string()),
        };
        Ok(())
    }

    /// The member's own monthly amount, if the ledger sets one.
    pub fn monthly_of(&self, member: MemberId) -> Option<i64> {
        self.monthly_fen.get(&member.to_string()).copied()
    }

    /// Records a payment of `amount_fen` for months `first..=last` of the year, as
    /// entry `id`.
    pub fn record_payment(
        &mut self,
        id: EntryId,
        member: MemberId,
        months: std::ops::RangeInclusive<u32>,
        amount_fen: i64,
        paid_on: Date,
    ) -> Result<()> {
        let (first, last) = (*months.start(), *months.end());
        if !(1..=12).contains(&first) || !(first..=12).contains(&last) {
            return Err(Error::invalid("months (1-12)", format!("{first}-{last}")));
        }
        check_amount(amount_fen)?;
        self.payments.insert(
            id.to_string(),
            Payment {
                member,
                first_month: first,
                last_month: last,
                amount_fen,
                paid_on,
                void: None,
            },
        );
        Ok(())
    }

    /// Voids a payment recorded by mistake; it stays in the ledger, marked.
    pub fn void_payment(&mut self, id: EntryId, reason: &str, on: Date) -> Result<()> {
        let reason = required("reason", reason)?;
        let payment = self
            .payments
            .get_mut(&id.to_string())
            .ok_or(Error::UnknownEntry(id))?;
        if payment.void.is_some() {
            return Err(Error::AlreadyVoided(id));
        }
        payment.void = Some(Void { on, reason });
        Ok(())
    }

    /// Records money spent on branch work, in the ledger's year, as entry `id`.
    pub fn record_spending(
        &mut self,
        id: EntryId,
        amount_fen: i64,
        category: SpendingCategory,
        purpose: &str,
        approved_by: &str,
        spent_on: Date,
    ) -> Result<()> {
        check_amount(amount_fen)?;
        let purpose = required("purpose", purpose)?;
        let approved_by = required("approved by", approved_by)?;
        check_year(self.year, spent_on)?;
        self.spending.insert(
            id.to_string(),
            Spending {
                amount_fen,
                category,
                purpose,
                approved_by,
                spent_on,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Date {
        text.parse().unwrap()
    }

    #[test]
    fn payments_cover_months_of_the_year_and_voided_ones_do_not_count() {
        let mut ledger = DuesLedger::new(BranchId::random(), 2026);
        let m = MemberId::random();
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 5..=4;
        for (months, fen) in [(0..=2, 100), (3..=13, 100), (backwards, 100), (1..=3, 0)] {
            assert_eq!(
                ledger
                    .record_payment(EntryId::random(), m, months, fen, day("2026-03-01"))
                    .unwrap_err()
                    .code(),
                "input.invalid"
            );
        }
        let (q1, april) = (EntryId::random(), EntryId::random());
        ledger
            .record_payment(q1, m, 1..=3, 300, day("2026-03-01"))
            .unwrap();
        ledger
            .record_payment(april, m, 4..=4, 100, day("2026-04-02"))
            .unwrap();
        ledger
            .void_payment(april, "recorded twice", day("2026-04-03"))
            .unwrap();
        assert_eq!(
            ledger
                .void_payment(april, "again", day("2026-04-03"))
                .unwrap_err()
                .code(),
            "ledger.already_voided"
        );
        assert_eq!(
            ledger
                .void_payment(EntryId::random(), "x", day("2026-04-03"))
                .unwrap_err()
                .code(),
            "ledger.unknown_entry"
        );
        assert_eq!(ledger.payments[&q1.to_string()].months(), 1..=3);
        assert!(ledger.payments[&april.to_string()].void.is_some());
        super::super::assert_declared_paths_exist(&ledger);
    }

    #[test]
    fn a_members_own_amount_is_set_and_cleared() {
        let m = MemberId::random();
        let mut a = DuesLedger::new(BranchId::random(), 2026);
        a.set_monthly(m, Some(50)).unwrap();
        assert_eq!(a.monthly_of(m), Some(50));
        assert_eq!(
            a.set_monthly(m, Some(-1)).unwrap_err().code(),
            "input.invalid"
        );
        a.set_monthly(m, None).unwrap();
        assert_eq!(a.monthly_of(m), None);
    }

    #[test]
    fn spending_needs_a_purpose_an_approver_and_the_ledgers_year() {
        let mut ledger = DuesLedger::new(BranchId::random(), 2026);
        let spend = |l: &mut DuesLedger, purpose: &str, by: &str, on: &str| {
            l.record_spending(
                EntryId::random(),
                5000,
                SpendingCategory::StudyMaterials,
                purpose,
                by,
                day(on),
            )
        };
        assert_eq!(
            spend(&mut ledger, " ", "支委会", "2026-05-01")
                .unwrap_err()
                .code(),
            "input.empty"
        );
        assert_eq!(
            spend(&mut ledger, "书", "", "2026-05-01")
                .unwrap_err()
                .code(),
            "input.empty"
        );
        assert_eq!(
            spend(&mut ledger, "书", "支委会", "2027-01-01")
                .unwrap_err()
                .code(),
            "ledger.outside_year"
        );
        assert_eq!(
            "party_dinner"
                .parse::<SpendingCategory>()
                .unwrap_err()
                .code(),
            "input.invalid"
        );
        spend(&mut ledger, "学习资料", "支委会", "2026-05-01").unwrap();
        assert_eq!(ledger.spending.len(), 1);
    }
}
