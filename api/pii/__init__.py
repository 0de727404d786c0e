"""Personal identities at rest 个人敏感信息加密存储: the encrypted field type, the blind index and
their keys, in one place every package uses (DESIGN.md, "Identities at rest").

- `crypto`: AES-256-GCM of one value (`Keyring.encrypt`/`decrypt`) and the HMAC-SHA256 blind
  index (`Keyring.index`), with the key id carried in every stored value;
- `keyring`: where the keys come from (`PII_KEYS`, `PII_INDEX_KEYS`, `PII_KEYS_FILE`), and the
  one installed keyring of the process;
- `types`: `EncryptedText`, the column type, and `BlindIndex`, the column beside it;
- `service`: rotation (`rotate`, `key_usage`, `retire`) over every such column of the metadata;
- `cli`: `flask pii status | rotate | retire`.
"""
