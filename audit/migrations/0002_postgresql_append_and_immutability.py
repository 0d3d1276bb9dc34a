"""PostgreSQL only: the one-round-trip append function and the triggers that make the log immutable.

`audit_append` locks the chain head row, numbers the entry, completes its canonical JSON with
`prev_hash` and `seq` (the rest is built by audit/chain.py), hashes it and inserts it. The triggers
reject UPDATE and DELETE on audit entries from any client, raw SQL included.
"""

from django.db import migrations

APPEND_FUNCTION = r"""
CREATE OR REPLACE FUNCTION audit_append(
    p_chain varchar, p_org uuid, p_ts timestamptz, p_actor_type varchar, p_actor_id varchar,
    p_actor_display varchar, p_event_code integer, p_event_name varchar, p_outcome varchar,
    p_ip inet, p_user_agent varchar, p_correlation_id varchar, p_target_type varchar,
    p_target_id varchar, p_data jsonb, p_prefix text, p_suffix text
) RETURNS TABLE (new_id bigint, new_seq bigint, new_prev_hash varchar, new_hash varchar)
LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_prev varchar;
    v_hash varchar;
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
    v_seq := v_seq + 1;
    v_hash := encode(sha256(convert_to(
        p_prefix || v_prev || '","seq":' || v_seq::text || p_suffix, 'UTF8')), 'hex');
    INSERT INTO audit_auditentry (
        org_id, chain, seq, ts, actor_type, actor_id, actor_display, event_code, event_name,
        outcome, ip, user_agent, correlation_id, target_type, target_id, data, prev_hash, hash
    ) VALUES (
        p_org, p_chain, v_seq, p_ts, p_actor_type, p_actor_id, p_actor_display, p_event_code,
        p_event_name, p_outcome, p_ip, p_user_agent, p_correlation_id, p_target_type,
        p_target_id, p_data, v_prev, v_hash
    ) RETURNING id INTO v_id;
    UPDATE audit_auditchain SET last_seq = v_seq, last_hash = v_hash WHERE chain = p_chain;
    RETURN QUERY SELECT v_id, v_seq, v_prev, v_hash;
END;
$$;
"""

IMMUTABILITY = r"""
CREATE OR REPLACE FUNCTION audit_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: %% on audit_auditentry is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
DROP TRIGGER IF EXISTS audit_entry_immutable ON audit_auditentry;
CREATE TRIGGER audit_entry_immutable BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
"""

REVERSE = r"""
DROP TRIGGER IF EXISTS audit_entry_immutable ON audit_auditentry;
DROP FUNCTION IF EXISTS audit_reject_change();
DROP FUNCTION IF EXISTS audit_append(varchar, uuid, timestamptz, varchar, varchar, varchar,
    integer, varchar, varchar, inet, varchar, varchar, varchar, varchar, jsonb, text, text);
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_FUNCTION)
        schema_editor.execute(IMMUTABILITY)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REVERSE)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
