package awskms

import (
	"context"
	"errors"
	"fmt"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"github.com/rkms/rkms/keyring"
)

// unavailableCodes are KMS error codes that mean "not now": throttling, internal faults, and
// dependencies (CloudHSM, XKS proxy) that did not answer.
func unavailableCode(code string) bool {
	switch code {
	case "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
		"LimitExceededException", "TooManyRequestsException", "RequestThrottled",
		"KMSInternalException", "InternalFailure", "InternalError", "ServiceUnavailable",
		"ServiceUnavailableException", "DependencyTimeoutException", "KeyUnavailableException",
		"RequestTimeout", "RequestTimeoutException", "XksProxyUriUnreachableException",
		"XksProxyInvalidResponseException", "CloudHsmClusterNotActiveException":
		return true
	}
	return false
}

// authCodes are the Decrypt refusals that mean "this ciphertext does not open here".
func authCode(code string) bool {
	return code == "InvalidCiphertextException" || code == "IncorrectKeyException"
}

// classify maps an SDK error to one wrapping keyring.ErrRegionUnavailable or
// keyring.ErrRegionRejected. ctx is the call's context (with the call deadline).
func (r *Region) classify(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("kms %s in %s: %w: %w", op, r.name, keyring.ErrRegionUnavailable, ctxErr)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		switch {
		case unavailableCode(code), apiErr.ErrorFault() == smithy.FaultServer, statusAtLeast(err, 500):
			return fmt.Errorf("kms %s in %s: %w: %s: %w", op, r.name, keyring.ErrRegionUnavailable, code, err)
		case op == "decrypt" && authCode(code):
			return fmt.Errorf("kms %s in %s: %w: authentication failed", op, r.name, keyring.ErrRegionRejected)
		default:
			return fmt.Errorf("kms %s in %s: %w: %s: %w", op, r.name, keyring.ErrRegionRejected, code, err)
		}
	}
	if status := httpStatus(err); status != 0 && status < 500 && status != 429 && status != 408 {
		return fmt.Errorf("kms %s in %s: %w: http %d: %w", op, r.name, keyring.ErrRegionRejected, status, err)
	}
	// Transport failures (refused, reset, DNS), deadlines, 5xx without a body, credential
	// retrieval: try another region.
	return fmt.Errorf("kms %s in %s: %w: %w", op, r.name, keyring.ErrRegionUnavailable, err)
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func statusAtLeast(err error, min int) bool { return httpStatus(err) >= min }
