package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/rkms/rkms/store"
)

// errConditionFailed marks a failed ConditionExpression; each operation turns it into its own
// sentinel (ErrExists, ErrConflict or ErrNotFound). It never leaves the package.
var errConditionFailed = errors.New("condition failed")

// classify turns an SDK error from endpoint name into the store's error contract:
//
//   - a failed condition: errConditionFailed;
//   - a request DynamoDB rejected as malformed (ValidationException, SerializationException, for
//     example an item over 400 KB): store.ErrInvalid, final, no fallback;
//   - everything else (network errors, timeouts, throttling, 5xx, a missing table, denied access,
//     a cancelled context): store.ErrUnavailable, so reads fall back to the next endpoint. The
//     context's error is wrapped too when the caller's context ended.
func classify(ctx, callCtx context.Context, name string, timeout time.Duration, err error) error {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return errConditionFailed
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("dynamodb %s: %w: %w", name, store.ErrUnavailable, ctxErr)
	}
	if errors.Is(callCtx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("dynamodb %s: no answer within %s: %w: %w", name, timeout, store.ErrUnavailable, context.DeadlineExceeded)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "ValidationException", "SerializationException":
			return fmt.Errorf("dynamodb %s rejected the request: %s: %w", name, apiErr.ErrorMessage(), store.ErrInvalid)
		}
	}
	return fmt.Errorf("dynamodb %s: %w: %w", name, store.ErrUnavailable, err)
}
