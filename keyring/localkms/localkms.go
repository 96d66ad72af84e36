package localkms

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/rkms/rkms/keyring"
)

const (
	masterKeySize = 32
	formatV1      = 0x01
	nonceSize     = 12
	tagSize       = 16
	adPrefix      = "rkms-localkms-v1\x00"
)

// errAuth is the one error every decryption failure reports.
var errAuth = fmt.Errorf("%w: authentication failed", keyring.ErrRegionRejected)

// Region is a software KMS region. It is safe for concurrent use.
type Region struct {
	name  string
	keyID string
	aead  cipher.AEAD
}

var _ keyring.Region = (*Region)(nil)

// Open returns the region name, reading its master key from dir/<name>.key or creating it.
// name is 1..64 bytes of A-Z a-z 0-9 . _ - and must not start with a dot. logger receives the
// not-for-production warning (nil: slog.Default()).
func Open(dir, name string, logger *slog.Logger) (*Region, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	path := filepath.Join(dir, name+".key")
	master, err := loadOrCreate(dir, path)
	if err != nil {
		return nil, fmt.Errorf("localkms region %s: %w", name, err)
	}
	defer clear(master)
	r, err := newRegion(name, master)
	if err != nil {
		return nil, err
	}
	logger.Warn("localkms: software key region in use, NOT FOR PRODUCTION (master key is a local file)",
		"region", name, "path", path, "key_id", r.keyID)
	return r, nil
}

// newRegion builds a region from master key bytes (copied into the cipher).
func newRegion(name string, master []byte) (*Region, error) {
	if len(master) != masterKeySize {
		return nil, fmt.Errorf("localkms region %s: master key has %d bytes, want %d", name, len(master), masterKeySize)
	}
	block, err := aes.NewCipher(master)
	if err != nil {
		return nil, fmt.Errorf("localkms region %s: %w", name, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("localkms region %s: %w", name, err)
	}
	fp := sha256.Sum256(append([]byte("rkms localkms key id\x00"), master...))
	return &Region{name: name, keyID: "local:" + name + ":" + hex.EncodeToString(fp[:8]), aead: aead}, nil
}

func validName(name string) error {
	if len(name) == 0 || len(name) > 64 || name[0] == '.' {
		return fmt.Errorf("localkms: invalid region name %q: want 1..64 bytes, not starting with a dot", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("localkms: invalid region name %q: byte 0x%02x not allowed", name, c)
		}
	}
	return nil
}

// loadOrCreate reads the master key at path, creating it if absent. Creation writes a temporary
// file and links it into place, so a concurrent starter either wins or reads the winner's key.
func loadOrCreate(dir, path string) ([]byte, error) {
	b, err := readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".localkms-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	key := make([]byte, masterKeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	_, werr := tmp.Write(key)
	clear(key)
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return nil, fmt.Errorf("write key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("install key file: %w", err)
	}
	return readKey(path)
}

func readKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %v: refusing a key readable by group or others (want 0600)", path, st.Mode().Perm())
	}
	b := make([]byte, masterKeySize+1)
	n, err := f.Read(b)
	if err != nil || n != masterKeySize {
		clear(b)
		return nil, fmt.Errorf("key file %s: want exactly %d bytes", path, masterKeySize)
	}
	return b[:masterKeySize], nil
}

// Name implements keyring.Region.
func (r *Region) Name() string { return r.name }

// KeyID implements keyring.Region: "local:<region>:<fingerprint of the master key>".
func (r *Region) KeyID() string { return r.keyID }

// GenerateDataKey implements keyring.Region.
func (r *Region) GenerateDataKey(ctx context.Context, encCtx map[string]string) (plaintext, wrapped []byte, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", keyring.ErrRegionUnavailable, err)
	}
	plaintext = make([]byte, keyring.DataKeySize)
	_, _ = rand.Read(plaintext)
	return plaintext, r.seal(plaintext, encCtx), nil
}

// Encrypt implements keyring.Region.
func (r *Region) Encrypt(ctx context.Context, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", keyring.ErrRegionUnavailable, err)
	}
	return r.seal(plaintext, encCtx), nil
}

// Decrypt implements keyring.Region.
func (r *Region) Decrypt(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", keyring.ErrRegionUnavailable, err)
	}
	if len(wrapped) < 1+nonceSize+tagSize || wrapped[0] != formatV1 {
		return nil, errAuth
	}
	nonce, ct := wrapped[1:1+nonceSize], wrapped[1+nonceSize:]
	pt, err := r.aead.Open(nil, nonce, ct, additionalData(encCtx))
	if err != nil {
		return nil, errAuth
	}
	return pt, nil
}

func (r *Region) seal(plaintext []byte, encCtx map[string]string) []byte {
	out := make([]byte, 1+nonceSize, 1+nonceSize+len(plaintext)+tagSize)
	out[0] = formatV1
	_, _ = rand.Read(out[1:])
	return r.aead.Seal(out, out[1:1+nonceSize], plaintext, additionalData(encCtx))
}

// additionalData is the canonical, unambiguous encoding of an encryption context.
func additionalData(encCtx map[string]string) []byte {
	keys := make([]string, 0, len(encCtx))
	for k := range encCtx {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	b.WriteString(adPrefix)
	b.Write(binary.AppendUvarint(nil, uint64(len(keys))))
	for _, k := range keys {
		v := encCtx[k]
		b.Write(binary.AppendUvarint(nil, uint64(len(k))))
		b.WriteString(k)
		b.Write(binary.AppendUvarint(nil, uint64(len(v))))
		b.WriteString(v)
	}
	return b.Bytes()
}
