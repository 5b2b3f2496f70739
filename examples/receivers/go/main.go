// A hookd receiver in Go (net/http, crypto/hmac): verifies, dedupes by event id, answers 204.
//
//	HOOKD_SECRET=hks_... go run main.go
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const tolerance = 5 * time.Minute

// verify checks hookd's sha256 scheme against one or several secrets (rotation).
func verify(secrets []string, timestamp, signature string, body []byte, now time.Time) error {
	if timestamp == "" || signature == "" {
		return errors.New("missing_header")
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return errors.New("malformed_timestamp")
	}
	var digests [][]byte
	for _, part := range strings.Split(signature, ",") {
		part = strings.TrimSpace(part)
		d, err := hex.DecodeString(strings.TrimPrefix(part, "sha256="))
		if !strings.HasPrefix(part, "sha256=") || err != nil || len(d) != sha256.Size {
			return errors.New("malformed_signature")
		}
		digests = append(digests, d)
	}
	age := now.Sub(time.Unix(ts, 0))
	if age > tolerance {
		return errors.New("timestamp_too_old")
	}
	if -age > tolerance {
		return errors.New("timestamp_in_future")
	}
	for _, secret := range secrets {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(strconv.FormatInt(ts, 10) + "."))
		mac.Write(body)
		expected := mac.Sum(nil)
		for _, d := range digests {
			if hmac.Equal(expected, d) { // constant time
				return nil
			}
		}
	}
	return errors.New("no_match")
}

func main() {
	secrets := []string{os.Getenv("HOOKD_SECRET")}
	var mu sync.Mutex
	seen := map[string]bool{} // use a store with expiry in production
	http.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20)) // the raw bytes
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if err := verify(secrets, r.Header.Get("X-Hookd-Timestamp"), r.Header.Get("X-Hookd-Signature"), body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		id := r.Header.Get("X-Hookd-Event-Id")
		mu.Lock()
		first := !seen[id]
		seen[id] = true
		mu.Unlock()
		if first { // at-least-once delivery: handle each event once
			log.Printf("event %s: %s", id, body)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:9000", nil))
}
