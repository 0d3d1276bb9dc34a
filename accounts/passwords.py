"""Human password hashing: Argon2id at OWASP's minimum cost (19 MiB, 2 passes, 1 lane).

Django's own Argon2 defaults (100 MiB, 8 lanes) cost about 200 ms per login on our hardware; this
is ~30 ms and still within OWASP's recommendation. Changing these numbers makes Django rehash each
password on the user's next successful login.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class IamArgon2Hasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
