"""The chain becomes keyed: beside its SHA-256 `hash`, each entry carries a `mac`, an HMAC-SHA256 of
that hash under the IAM_AUDIT_KEYS key it names (`hash_kid`), computed in Python (audit/chain.py).

Existing entries keep their hashes and get `hash_kid` "" and `mac` "" (they are not rewritten);
every chain that ends in them is sealed by one keyed `audit.chain_keyed` entry (audit/legacy.py).
On PostgreSQL `audit_append` changes shape: it no longer hashes (the MAC's key must never reach the
database, and the MAC is over the hash) but inserts an entry hashed and MAC'd in Python if the head
is still the one it was computed against.

Run it with the previous release stopped: the old function is dropped, so an old process's append
fails (and its transaction with it) rather than add an unkeyed entry after the seal. Reversing it
restores the old function and drops the MACs; every hash stays the contract's SHA-256, so the
previous release still verifies the whole chain.
"""

from importlib import import_module

from django.db import migrations, models

from audit.legacy import legacy_chains_seal

OLD_SIGNATURE = ("varchar, uuid, timestamptz, varchar, varchar, varchar, integer, varchar, varchar, inet, "
                 "varchar, varchar, varchar, varchar, jsonb, text, text")
NEW_SIGNATURE = ("varchar, uuid, timestamptz, varchar, varchar, varchar, integer, varchar, varchar, inet, "
                 "varchar, varchar, varchar, varchar, jsonb, bigint, varchar, varchar, varchar, varchar")

APPEND_FUNCTION = r"""
CREATE OR REPLACE FUNCTION audit_append(
    p_chain varchar, p_org uuid, p_ts timestamptz, p_actor_type varchar, p_actor_id varchar,
    p_actor_display varchar, p_event_code integer, p_event_name varchar, p_outcome varchar,
    p_ip inet, p_user_agent varchar, p_correlation_id varchar, p_target_type varchar,
    p_target_id varchar, p_data jsonb, p_seq bigint, p_prev_hash varchar, p_hash varchar,
    p_hash_kid varchar, p_mac varchar
) RETURNS TABLE (new_id bigint, head_seq bigint, head_hash varchar)
LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_prev varchar;
    v_id bigint;
BEGIN
    SELECT last_seq, last_hash INTO v_seq, v_prev
      FROM audit_auditchain WHERE chain = p_chain FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO audit_auditchain (chain, last_seq, last_hash)
             VALUES (p_chain, 0, repeat('0', 64)) ON CONFLICT (chain) DO NOTHING;
        SELECT last_seq, last_hash INTO v_seq, v_prev
          FROM audit_auditchain WHERE chain = p_chain FOR UPDATE;
    END IF;
    IF p_seq <> v_seq + 1 OR p_prev_hash <> v_prev THEN
        -- Hashed against a stale head: nothing is written; the caller hashes and MACs again
        -- against this one, which stays locked until its transaction ends.
        RETURN QUERY SELECT NULL::bigint, v_seq, v_prev;
        RETURN;
    END IF;
    INSERT INTO audit_auditentry (
        org_id, chain, seq, ts, actor_type, actor_id, actor_display, event_code, event_name,
        outcome, ip, user_agent, correlation_id, target_type, target_id, data, prev_hash, hash,
        hash_kid, mac
    ) VALUES (
        p_org, p_chain, p_seq, p_ts, p_actor_type, p_actor_id, p_actor_display, p_event_code,
        p_event_name, p_outcome, p_ip, p_user_agent, p_correlation_id, p_target_type,
        p_target_id, p_data, p_prev_hash, p_hash, p_hash_kid, p_mac
    ) RETURNING id INTO v_id;
    UPDATE audit_auditchain SET last_seq = p_seq, last_hash = p_hash WHERE chain = p_chain;
    RETURN QUERY SELECT v_id, p_seq, p_hash;
END;
$$;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS audit_append({OLD_SIGNATURE})")
        schema_editor.execute(APPEND_FUNCTION)
    legacy_chains_seal(chain_model=apps.get_model("audit", "AuditChain"),
                       entry_model=apps.get_model("audit", "AuditEntry"))


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS audit_append({NEW_SIGNATURE})")
        schema_editor.execute(import_module("audit.migrations.0002_postgresql_append_and_immutability")
                              .APPEND_FUNCTION)


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0004_org_in_core'),
    ]

    operations = [
        migrations.AddField(
            model_name='auditentry',
            name='hash_kid',
            field=models.CharField(blank=True, default='', max_length=32),
        ),
        migrations.AddField(
            model_name='auditentry',
            name='mac',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
