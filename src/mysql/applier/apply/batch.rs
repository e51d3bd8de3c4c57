//! The batch path: runs of clean inserts/updates of a batchable table applied with one locking read and multi-row statements, and a group's deferred rows applied per table and key (chains). Same decisions as the row path.

use super::*;

/// At most this many rows go into one batched statement,
pub(super) const BATCH_MAX_ROWS: usize = 1_000;
/// with at most this many bound values,
pub(super) const BATCH_MAX_PARAMS: usize = 30_000;
/// and about this many bytes of values (well under max_allowed_packet).
pub(super) const BATCH_MAX_BYTES: usize = 4 << 20;
/// A run of inserts only (a bulk load, a big transaction) may be longer: it is
/// written with one `LOAD DATA` (see `load`), or as several statements under a
/// savepoint; its keys are locked or looked up in one statement (at most this many
/// keys' values, under the protocol's 65,535 parameters).
pub(super) const RUN_MAX_ROWS: usize = 10_000;
pub(super) const RUN_MAX_BYTES: usize = 16 << 20;

/// What one multi-row statement (or run, [`Budget::run`]) may still take: rows,
/// bound values, bytes.
pub(super) struct Budget {
    pub(super) rows: usize,
    pub(super) params: usize,
    pub(super) bytes: usize,
    max: (usize, usize, usize),
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            rows: 0,
            params: 0,
            bytes: 0,
            max: (BATCH_MAX_ROWS, BATCH_MAX_PARAMS, BATCH_MAX_BYTES),
        }
    }
}

impl Budget {
    /// The budget of a run of inserts (written by [`Applier::insert_rows`]).
    pub(super) fn run() -> Self {
        Budget {
            max: (RUN_MAX_ROWS, 60_000, RUN_MAX_BYTES),
            ..Budget::default()
        }
    }

    /// Takes `img` into the statement if it fits (a first row always does).
    pub(super) fn admits(&mut self, img: &RowImage) -> bool {
        let (p, b) = (img.values.len(), img.values.iter().map(approx_size).sum::<usize>());
        let (max_rows, max_params, max_bytes) = self.max;
        let fits =
            self.rows == 0 || (self.rows < max_rows && self.params + p <= max_params && self.bytes + b <= max_bytes);
        if fits {
            (self.rows, self.params, self.bytes) = (self.rows + 1, self.params + p, self.bytes + b);
        }
        fits
    }
}

/// The primary key of `img` as integers, if every key column holds one.
pub(super) fn int_key(t: &LocalTable, img: &RowImage) -> Option<Vec<i128>> {
    use crate::model::Value as V;
    t.pk.iter()
        .map(|c| match img.get(c)? {
            V::Int(i) => Some(*i as i128),
            V::UInt(u) => Some(*u as i128),
            _ => None,
        })
        .collect()
}

pub(super) fn int_param(x: i128) -> MyValue {
    match i64::try_from(x) {
        Ok(i) => MyValue::Int(i),
        Err(_) => MyValue::UInt(x as u64),
    }
}

pub(super) fn int_of(v: &MyValue) -> Option<i128> {
    match v {
        MyValue::Int(i) => Some(*i as i128),
        MyValue::UInt(u) => Some(*u as i128),
        MyValue::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// About how many bytes a value takes in a statement.
pub(super) fn approx_size(v: &crate::model::Value) -> usize {
    use crate::model::Value as V;
    match v {
        V::Decimal(t) | V::Date(t) | V::DateTime(t) | V::Time(t) | V::Text(t) | V::Json(t) => t.len() + 4,
        V::Bytes(b) => b.len() + 4,
        V::Enum { label: Some(l), .. } | V::Set { labels: Some(l), .. } => l.len() + 4,
        V::Timestamp { .. } => 30,
        _ => 9,
    }
}

impl Applier {
    /// How many changes from the start of `changes` form one batch: consecutive
    /// inserts and key-preserving updates of one versioned table with an all-integer
    /// primary key, no other unique key and no foreign key, each key at most once,
    /// within one statement's limits, or a run's ([`Budget::run`]) while all are
    /// inserts. 0 or 1: apply row by row.
    pub(super) async fn batch_len(&mut self, changes: &[Change]) -> Result<usize, Error> {
        let Some(Change::Row(first)) = changes.first() else {
            return Ok(0);
        };
        if self.is_parked(None, first) {
            return Ok(0);
        }
        let t = self.table(&first.db, &first.tbl_name()).await?;
        if !t.batchable {
            return Ok(0);
        }
        let mut keys = std::collections::HashSet::new();
        let (mut statement, mut run, mut inserts_only) = (Budget::default(), Budget::run(), true);
        let mut n = 0;
        for c in changes {
            let Change::Row(r) = c else { break };
            if r.db != first.db || r.table != first.table {
                break;
            }
            let Some(key) = self.batch_key(&t, r) else { break };
            let after = r.after.as_ref().expect("batchable rows have an after image");
            let (in_statement, in_run) = (statement.admits(after), run.admits(after));
            inserts_only &= r.op == Op::Insert;
            if !(if inserts_only { in_run } else { in_statement }) || !keys.insert(key) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// The integer key of `r` if it can go into a batch of its table `t`: an insert or a
    /// key-preserving update whose images match the local columns.
    pub(super) fn batch_key(&self, t: &LocalTable, r: &RowChange) -> Option<Vec<i128>> {
        let after = r.after.as_ref()?;
        if self.check_image(t, after).is_err() {
            return None; // the row path reports it
        }
        let key = int_key(t, after)?;
        match (r.op, &r.before) {
            (Op::Insert, _) => Some(key),
            (Op::Update, Some(before))
                if self.check_image(t, before).is_ok() && int_key(t, before).as_ref() == Some(&key) =>
            {
                Some(key)
            }
            _ => None,
        }
    }

    /// `tx` with each delete of a key that the same transaction inserts again (the
    /// DELETE + INSERT of sysbench, REPLACE, some ORMs' "save") made one update from the
    /// deleted row to the inserted one, when the insert's version is the greater: the
    /// same decision the pair gets row by row, without a tombstone the origin never
    /// recorded either (its journal skips a key written again in its transaction), and
    /// batchable. Only complete transactions of tables with an integer key.
    pub(super) async fn merge_replaces(&mut self, mut tx: Transaction) -> Result<Transaction, Error> {
        if tx.fragment != 0
            || !tx.last
            || !tx
                .changes
                .iter()
                .any(|c| matches!(c, Change::Row(r) if r.op == Op::Delete))
            || is_applier_transaction(&tx)
            || crate::mysql::is_journal_transaction(&tx)
        {
            return Ok(tx);
        }
        let mut i = 0;
        while i < tx.changes.len() {
            let Change::Row(d) = &tx.changes[i] else {
                i += 1;
                continue;
            };
            if d.op != Op::Delete || !self.replicated(d) {
                i += 1;
                continue;
            }
            // (a missing table is the row path's to report)
            let Ok(t) = self.table(&d.db, &d.tbl_name()).await else {
                i += 1;
                continue;
            };
            let before = d.before.as_ref().expect("a delete has a before image");
            let (Some(vcol), Some(key)) = (t.version.as_ref(), int_key(&t, before)) else {
                i += 1;
                continue;
            };
            let touches = |r: &RowChange| {
                r.db == d.db
                    && r.table == d.table
                    && [&r.before, &r.after]
                        .into_iter()
                        .flatten()
                        .any(|img| int_key(&t, img).as_ref() == Some(&key))
            };
            let next = tx.changes[i + 1..]
                .iter()
                .position(|c| matches!(c, Change::Row(r) if touches(r)))
                .map(|j| i + 1 + j);
            let merged = match next.map(|j| &tx.changes[j]) {
                Some(Change::Row(ins)) if ins.op == Op::Insert => {
                    let after = ins.after.as_ref().expect("an insert has an after image");
                    let newer = match (
                        after.get(vcol).and_then(version_of),
                        before.get(vcol).and_then(version_of),
                    ) {
                        (Some(a), Some(b)) => a > b,
                        _ => false,
                    };
                    (newer && self.check_image(&t, before).is_ok() && self.check_image(&t, after).is_ok()).then(|| {
                        RowChange {
                            op: Op::Update,
                            before: Some(before.clone()),
                            ..ins.clone()
                        }
                    })
                }
                _ => None,
            };
            match (merged, next) {
                (Some(m), Some(j)) => {
                    tx.changes[j] = Change::Row(m);
                    tx.changes.remove(i);
                }
                _ => i += 1,
            }
        }
        Ok(tx)
    }

    /// True when every change of `tx` can wait for the group's batches: rows of other
    /// databases, or batchable rows of versioned tables (see `batch_key`).
    pub(super) async fn deferrable(&mut self, tx: &Transaction) -> Result<bool, Error> {
        for c in &tx.changes {
            match c {
                Change::Row(r) if self.replicated(r) => {
                    let t = self.table(&r.db, &r.tbl_name()).await?;
                    if !t.batchable || self.is_parked(None, r) || self.batch_key(&t, r).is_none() {
                        return Ok(false);
                    }
                }
                Change::Row(r) if self.tombstone_of_replicated(r) => return Ok(false),
                Change::Row(_) => {}
                Change::Statement(_) => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Applies the rows of the group's deferred transactions: per table, each key's
    /// changes in order as a chain, the chains in batches. A chain whose first change
    /// is clean (no conflict) and whose later changes each continue the one before is
    /// written as its last image; any other chain goes row by row. The tables are
    /// batchable (no foreign key, no other unique key, no trigger of their own), so
    /// only each key's order matters and the result is the result of applying the
    /// transactions one by one; the group commits as one.
    pub(super) async fn apply_deferred(&mut self) -> Result<(), Error> {
        let Some(g) = self.group.as_mut() else {
            return Ok(());
        };
        if g.deferred.is_empty() {
            return Ok(());
        }
        let txs = std::mem::take(&mut g.deferred);
        g.deferred_rows = 0;
        let origin = g.origin.clone();
        let mut tables: Vec<(&RowChange, Vec<(&Transaction, &RowChange)>)> = Vec::new();
        for tx in &txs {
            for c in &tx.changes {
                let Change::Row(r) = c else { continue };
                if !self.replicated(r) {
                    continue;
                }
                match tables.iter_mut().find(|(k, _)| k.db == r.db && k.table == r.table) {
                    Some((_, rows)) => rows.push((tx, r)),
                    None => tables.push((r, vec![(tx, r)])),
                }
            }
        }
        for (first, rows) in tables {
            let t = self.table(&first.db, &first.tbl_name()).await?;
            // each key's changes in order: a chain
            let mut index: HashMap<Vec<i128>, usize> = HashMap::new();
            let mut chains: Vec<Vec<(&Transaction, &RowChange)>> = Vec::new();
            for (tx, r) in rows {
                let key = self.batch_key(&t, r).expect("deferred rows are batchable");
                match index.get(&key) {
                    Some(&i) => chains[i].push((tx, r)),
                    None => {
                        index.insert(key, chains.len());
                        chains.push(vec![(tx, r)]);
                    }
                }
            }
            // batches of chains within the statement limits (one image per chain)
            let (mut from, mut budget) = (0, Budget::default());
            for i in 0..chains.len() {
                let (_, r) = chains[i].last().expect("a chain has a change");
                let after = r.after.as_ref().expect("batchable rows have an after image");
                if !budget.admits(after) {
                    self.apply_wave(&origin, &chains[from..i]).await?;
                    (from, budget) = (i, Budget::default());
                    budget.admits(after);
                }
            }
            self.apply_wave(&origin, &chains[from..]).await?;
        }
        Ok(())
    }

    pub(super) async fn apply_wave(
        &mut self,
        origin: &str,
        chains: &[Vec<(&Transaction, &RowChange)>],
    ) -> Result<(), Error> {
        match chains {
            [] => Ok(()),
            [one] if one.len() == 1 => self.apply_row(origin, one[0].0, one[0].1).await,
            _ => {
                let chains: Vec<&[(&Transaction, &RowChange)]> = chains.iter().map(|c| c.as_slice()).collect();
                self.apply_batch(origin, &chains).await
            }
        }
    }

    /// Applies a batch found by [`Applier::batch_len`] with the same decisions as row by
    /// row: one locking read of all its rows and tombstones, then one multi-row INSERT
    /// for the absent keys and one multi-row upsert for the rows the origin changed as
    /// they are here. Anything else (a conflict, a tie, a tombstone, a key inserted
    /// here meanwhile) goes through the row path, which logs it. The keys are distinct
    /// and the table has no other unique key, so the order of the writes is free.
    pub(super) async fn apply_batch(
        &mut self,
        origin: &str,
        chains: &[&[(&Transaction, &RowChange)]],
    ) -> Result<(), Error> {
        struct Item<'a> {
            tx: &'a Transaction,
            key: Vec<i128>,
            img: &'a RowImage,
            v: i128,
            before: Option<i128>,
            /// The key's later changes in the group, and whether each continues the
            /// one before it (its before-image version is the previous after-image
            /// version, and its version is greater): then, if the first change is
            /// clean, all are, and the last image is the result.
            rest: &'a [(&'a Transaction, &'a RowChange)],
            chained: bool,
        }
        let Some((_, first)) = chains.first().and_then(|c| c.first()) else {
            return Ok(());
        };
        let t = self.table(&first.db, &first.tbl_name()).await?;
        let Some(vcol) = t.version.clone() else {
            return self.apply_batch_unversioned(origin, &t, chains).await;
        };
        let settings = self.s.clone();
        let version = |img: &RowImage| version_in(&settings, &t, &vcol, img);
        let mut items = Vec::with_capacity(chains.len());
        for chain in chains {
            let (tx, r) = chain[0];
            let after = r.after.as_ref().expect("batched rows have an after image");
            let (v, before) = (version(after)?, r.before.as_ref().map(version).transpose()?);
            let mut chained = true;
            let mut prev = v;
            for (_, next) in &chain[1..] {
                let nv = version(next.after.as_ref().expect("batched rows have an after image"))?;
                let nb = next.before.as_ref().map(version).transpose()?;
                chained &= next.op == Op::Update && nb == Some(prev) && nv > prev;
                prev = nv;
            }
            items.push(Item {
                tx,
                key: int_key(&t, after).expect("batched keys are integers"),
                img: after,
                v,
                before,
                rest: &chain[1..],
                chained,
            });
        }
        let mut in_range = Vec::with_capacity(items.len());
        for it in items {
            if it.before.is_some() || self.range_ok(origin, it.tx, &t, it.img).await? {
                in_range.push(it);
            } else {
                // the key's later changes meet the state the row path would leave
                for &(tx, r) in it.rest {
                    self.apply_row(origin, tx, r).await?;
                }
            }
        }
        let items = in_range;
        if items.is_empty() {
            return Ok(());
        }
        // a clean chain leaves its last image
        fn images<'a>(items: &[Item<'a>]) -> Vec<&'a RowImage> {
            items
                .iter()
                .map(|it| it.rest.last().and_then(|(_, r)| r.after.as_ref()).unwrap_or(it.img))
                .collect()
        }
        let changes = |items: &[Item]| items.iter().map(|i| 1 + i.rest.len() as u64).sum::<u64>();
        let keys: Vec<&[i128]> = items.iter().map(|i| i.key.as_slice()).collect();
        // Inserts only (a bulk load, a big transaction): the keys are new here unless
        // the INSERT says otherwise (1062, the statement undone), so the rows need not
        // be read first. Nothing can delete a row that is not here; a local insert of
        // one of the keys that commits first makes the INSERT fail, and the full path
        // below decides. Only when no tombstone (or TRUNCATE) beats any of them.
        if items.iter().all(|i| i.before.is_none() && i.chained) {
            let tombs = self.lock_tombstones(&t, &keys).await?;
            if items.iter().all(|i| tombs.get(&i.key).is_none_or(|&x| i.v > x))
                && self.insert_rows(&t, &images(&items), changes(&items)).await?
            {
                return Ok(());
            }
        }
        // Every key's row is locked first (an insert that meets a row here is a
        // conflict for the row path; a local delete of it waits for us), then the
        // tombstones are read: as the row path's single locking read does.
        let (local, tombs) = self.lock_keys(&t, &keys).await?;
        let (mut inserts, mut upserts, mut slow) = (Vec::new(), Vec::new(), Vec::new());
        for it in items {
            let lv = local.get(&it.key).copied();
            let clean = match (lv, it.before) {
                (None, None) => tombs.get(&it.key).is_none_or(|&x| it.v > x),
                (Some(l), Some(b)) => l == b && it.v > l && tombs.get(&it.key).is_none_or(|&x| it.v > x),
                _ => false,
            };
            match (clean && it.chained, lv) {
                (true, None) => inserts.push(it),
                (true, Some(_)) => upserts.push(it),
                (false, _) => slow.push(it),
            }
        }
        let non_key: Vec<String> = t
            .columns
            .iter()
            .filter(|c| !t.pk.contains(c))
            .map(|c| ident(c))
            .collect();
        if non_key.is_empty() {
            slow.append(&mut upserts);
        }
        // a key inserted here after the locking read: row by row decides and logs
        if !inserts.is_empty() && !self.insert_rows(&t, &images(&inserts), changes(&inserts)).await? {
            slow.append(&mut inserts);
        }
        // a unique key added since the table was read: row by row quarantines
        if !upserts.is_empty()
            && !self
                .write_rows(&t, &images(&upserts), &non_key, changes(&upserts))
                .await?
        {
            slow.append(&mut upserts);
        }
        for it in slow {
            let key = self.key_values(&t, it.img)?;
            self.write_row(origin, it.tx, &t, &key, it.img, it.v, it.before).await?;
            for &(tx, r) in it.rest {
                self.apply_row(origin, tx, r).await?;
            }
        }
        Ok(())
    }

    /// A batch of a table listed in `[replication] unversioned`: the origin wins, so
    /// each key's last image is upserted, with no read (the row path's upsert, in one
    /// statement); inserts outside the origin's ID range are caught as row by row.
    pub(super) async fn apply_batch_unversioned(
        &mut self,
        origin: &str,
        t: &LocalTable,
        chains: &[&[(&Transaction, &RowChange)]],
    ) -> Result<(), Error> {
        let mut images: Vec<&RowImage> = Vec::with_capacity(chains.len());
        let mut n = 0u64;
        for chain in chains {
            let (_, r) = chain[0];
            let after = r.after.as_ref().expect("batched rows have an after image");
            if !self.in_range(origin, t, after) {
                // the row path decides whether the change creates the key here
                for &(tx, r) in chain.iter() {
                    self.apply_row(origin, tx, r).await?;
                }
                continue;
            }
            let (_, last) = chain[chain.len() - 1];
            images.push(last.after.as_ref().expect("batched rows have an after image"));
            n += chain.len() as u64;
        }
        if images.is_empty() {
            return Ok(());
        }
        let every: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
        if !self.write_rows(t, &images, &every, n).await? {
            // a unique key added since the table was read: the row path reports it
            for chain in chains {
                for &(tx, r) in chain.iter() {
                    self.apply_row(origin, tx, r).await?;
                }
            }
        }
        Ok(())
    }

    /// Multi-row `INSERT`s of `images` into `t`, or with `update` columns upserts
    /// (`ON DUPLICATE KEY UPDATE c = VALUES(c)`), counting `changes` applied rows:
    /// one statement when they fit one ([`Budget`]), else several under a savepoint.
    /// `Ok(false)` when one met a duplicate key (1062) or a missing parent row
    /// (1452): nothing was written and the rows are for the row path.
    pub(super) async fn write_rows(
        &mut self,
        t: &LocalTable,
        images: &[&RowImage],
        update: &[String],
        changes: u64,
    ) -> Result<bool, Error> {
        let mut chunks: Vec<&[&RowImage]> = Vec::new();
        let (mut from, mut budget) = (0, Budget::default());
        for (i, img) in images.iter().enumerate() {
            if !budget.admits(img) {
                chunks.push(&images[from..i]);
                (from, budget) = (i, Budget::default());
                budget.admits(img);
            }
        }
        chunks.push(&images[from..]);
        if chunks.len() == 1 {
            return self.write_statement(t, images, update, changes).await;
        }
        self.savepoint("SAVEPOINT drc_rows").await?;
        for chunk in chunks {
            if !self.write_statement(t, chunk, update, 0).await? {
                self.savepoint("ROLLBACK TO SAVEPOINT drc_rows").await?;
                return Ok(false);
            }
        }
        self.stats.rows += changes;
        self.uncommitted.batched_rows += changes;
        Ok(true)
    }

    /// Sets or rolls back to a savepoint of the open transaction.
    pub(super) async fn savepoint(&mut self, sql: &str) -> Result<(), Error> {
        self.conn.query_drop(sql).await.map_err(|e| mysql_err(&self.s, sql, e))
    }

    /// One multi-row statement of [`Applier::write_rows`].
    async fn write_statement(
        &mut self,
        t: &LocalTable,
        images: &[&RowImage],
        update: &[String],
        changes: u64,
    ) -> Result<bool, Error> {
        let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
        let row_marks = format!("({})", vec!["?"; cols.len()].join(", "));
        let mut sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            t.qualified(),
            cols.join(", "),
            vec![row_marks.as_str(); images.len()].join(", ")
        );
        if !update.is_empty() {
            let set: Vec<String> = update.iter().map(|c| format!("{c} = VALUES({c})")).collect();
            sql += &format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "));
        }
        let mut p = Vec::with_capacity(images.len() * cols.len());
        for img in images {
            for v in &img.values {
                p.push(bind(v).map_err(|e| definite(&self.s, e))?);
            }
        }
        match self.conn.exec_drop(sql, p).await {
            Ok(()) => {
                self.stats.rows += changes;
                self.uncommitted.batched_rows += changes;
                Ok(true)
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1062 || e.code == 1452 => Ok(false),
            Err(e) => Err(mysql_err(
                &self.s,
                &format!("writing rows of `{}`.`{}`", t.db, t.tbl),
                e,
            )),
        }
    }

    /// Locks the local rows of `keys` (integer primary keys), then their tombstones;
    /// returns their versions by key.
    pub(super) async fn lock_keys(
        &mut self,
        t: &LocalTable,
        keys: &[&[i128]],
    ) -> Result<(KeyVersions, KeyVersions), Error> {
        let local = self.lock_rows(t, keys).await?;
        let tombs = self.lock_tombstones(t, keys).await?;
        Ok((local, tombs))
    }

    pub(super) async fn lock_rows(&mut self, t: &LocalTable, keys: &[&[i128]]) -> Result<KeyVersions, Error> {
        let vcol = ident(t.version.as_ref().expect("version"));
        let pk_cols: Vec<String> = t.pk.iter().map(|c| ident(c)).collect();
        let filter = if t.pk.len() == 1 {
            format!("{} IN ({})", pk_cols[0], vec!["?"; keys.len()].join(", "))
        } else {
            let one = format!("({})", t.pk_where());
            vec![one.as_str(); keys.len()].join(" OR ")
        };
        let key_params: Vec<MyValue> = keys.iter().flat_map(|k| k.iter().map(|&x| int_param(x))).collect();
        let sql = format!(
            "SELECT {}, CAST({vcol} AS DECIMAL(30,6)) FROM {} WHERE {filter} FOR UPDATE",
            pk_cols.join(", "),
            t.qualified()
        );
        let m = |e| mysql_err(&self.s, &format!("locking rows of `{}`.`{}`", t.db, t.tbl), e);
        let rows: Vec<mysql_async::Row> = self.conn.exec(sql, key_params).await.map_err(m)?;
        let mut local = KeyVersions::with_capacity(rows.len());
        for row in rows {
            let vals = row.unwrap();
            let key: Option<Vec<i128>> = vals[..t.pk.len()].iter().map(int_of).collect();
            let v = match &vals[t.pk.len()] {
                MyValue::Bytes(b) => std::str::from_utf8(b).ok().and_then(parse_decimal),
                _ => None,
            };
            if let (Some(key), Some(v)) = (key, v) {
                local.insert(key, v);
            }
        }
        Ok(local)
    }
}
