"""Signing algorithms for capability tokens: sign and verify costs, side by side in one run.

The token endpoint signs once per grant; introspection and resource servers verify. The default
(ES256) was chosen from this table and from interoperability: every mainstream JOSE library
verifies ES256, while EdDSA support is still uneven. RS256 (3072-bit) verifies about as fast but
signs roughly 18x slower, which would cost the hot path more than it saves elsewhere.
"""

import time

import jwt

from agents.keys import ALGORITHMS, key_generate

ROUNDS = 3000
CLAIMS = {"iss": "https://iam.example/oauth/acme", "sub": "agent:3f2c", "aud": "https://tickets.example/api",
          "exp": 2_000_000_000, "iat": 1_700_000_000, "jti": "0" * 32, "client_id": "agt_" + "0" * 24,
          "scope": "tickets:read", "org": "acme"}


def _per_op_us(operation) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(ROUNDS):
            operation()
        best = min(best, (time.perf_counter() - started) / ROUNDS * 1e6)
    return best


def main() -> None:
    rows = []
    for alg in ALGORITHMS:
        key = key_generate(alg)
        token = jwt.encode(CLAIMS, key, algorithm=alg, headers={"kid": "k", "typ": "at+jwt"})
        public = key.public_key()
        sign = _per_op_us(lambda k=key, a=alg: jwt.encode(CLAIMS, k, algorithm=a, headers={"kid": "k"}))
        verify = _per_op_us(lambda t=token, p=public, a=alg: jwt.decode(
            t, p, algorithms=[a], audience=CLAIMS["aud"], options={"verify_exp": False}))
        rows.append((alg, sign, verify, len(token)))
    base_sign, base_verify = rows[0][1], rows[0][2]
    lines = ["token signing algorithms (PyJWT + cryptography, one thread)", "",
             "alg     sign us  verify us  sign vs ES256  verify vs ES256  token bytes",
             "-----  --------  ---------  -------------  ---------------  -----------"]
    for alg, sign, verify, size in rows:
        lines.append(f"{alg:<6} {sign:8.0f}  {verify:9.0f}  {sign / base_sign:12.2f}x  "
                     f"{verify / base_verify:14.2f}x  {size:11d}")
    lines += ["", f"best of 3 runs of {ROUNDS} operations each; RS256 keys are 3072-bit."]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
