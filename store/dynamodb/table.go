package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// maxTableWait bounds how long New waits for a table to become ACTIVE (ctx may end it earlier).
const maxTableWait = 5 * time.Minute

// ensureTable creates the table on the write endpoint if it is missing, checks that an existing
// table has the expected key schema, and waits until it is ACTIVE.
func (s *Store) ensureTable(ctx context.Context) error {
	c := s.clients[0]
	var desc *types.TableDescription
	err := s.call(ctx, c, func(ctx context.Context) error {
		out, err := c.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)})
		if err == nil {
			desc = out.Table
		}
		return err
	})
	var notFound *types.ResourceNotFoundException
	switch {
	case err == nil:
		if err := checkKeySchema(desc); err != nil {
			return fmt.Errorf("dynamodb table %s: %w", s.table, err)
		}
		if desc.TableStatus == types.TableStatusActive {
			return nil
		}
	case errors.As(err, &notFound):
		if err := s.createTable(ctx, c); err != nil {
			return err
		}
	default:
		return fmt.Errorf("describe dynamodb table %s: %w", s.table, err)
	}
	waiter := dynamodb.NewTableExistsWaiter(c.db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.table)}, maxTableWait); err != nil {
		return fmt.Errorf("wait for dynamodb table %s to become active: %w", s.table, err)
	}
	return nil
}

func (s *Store) createTable(ctx context.Context, c *client) error {
	err := s.call(ctx, c, func(ctx context.Context) error {
		_, err := c.db.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(s.table),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrID), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrID), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		})
		return err
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) { // in use: another replica created it first
		return fmt.Errorf("create dynamodb table %s: %w", s.table, err)
	}
	return nil
}

// checkKeySchema requires exactly one key, the string hash key "id".
func checkKeySchema(t *types.TableDescription) error {
	if t == nil {
		return errors.New("no table description")
	}
	if len(t.KeySchema) != 1 || aws.ToString(t.KeySchema[0].AttributeName) != attrID || t.KeySchema[0].KeyType != types.KeyTypeHash {
		return fmt.Errorf("key schema must be the single hash key %q", attrID)
	}
	for _, a := range t.AttributeDefinitions {
		if aws.ToString(a.AttributeName) == attrID && a.AttributeType != types.ScalarAttributeTypeS {
			return fmt.Errorf("key %q must be a string (S), not %s", attrID, a.AttributeType)
		}
	}
	return nil
}
