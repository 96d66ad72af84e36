package dynamodb

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Test-only conversion between attribute values and DynamoDB JSON ({"S": "..."}, {"B": base64},
// ...), the form the AWS CLI prints, so the golden item is readable.

func toAVJSON(av types.AttributeValue) any {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return map[string]any{"S": v.Value}
	case *types.AttributeValueMemberN:
		return map[string]any{"N": v.Value}
	case *types.AttributeValueMemberB:
		return map[string]any{"B": base64.StdEncoding.EncodeToString(v.Value)}
	case *types.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, e := range v.Value {
			l[i] = toAVJSON(e)
		}
		return map[string]any{"L": l}
	case *types.AttributeValueMemberM:
		return map[string]any{"M": itemToJSON(v.Value)}
	case *types.AttributeValueMemberBOOL:
		return map[string]any{"BOOL": v.Value}
	}
	panic(fmt.Sprintf("unsupported attribute value %T", av))
}

func itemToJSON(item map[string]types.AttributeValue) map[string]any {
	m := make(map[string]any, len(item))
	for k, v := range item {
		m[k] = toAVJSON(v)
	}
	return m
}

func marshalItem(item map[string]types.AttributeValue) ([]byte, error) {
	return json.MarshalIndent(itemToJSON(item), "", "  ")
}

func fromAVJSON(raw json.RawMessage) (types.AttributeValue, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if len(m) != 1 {
		return nil, errors.New("attribute value must have exactly one type")
	}
	keys := make([]string, 0, 1)
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	v := m[keys[0]]
	switch keys[0] {
	case "S", "N":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return nil, err
		}
		if keys[0] == "S" {
			return &types.AttributeValueMemberS{Value: s}, nil
		}
		return &types.AttributeValueMemberN{Value: s}, nil
	case "B":
		var b []byte
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberB{Value: b}, nil
	case "L":
		var l []json.RawMessage
		if err := json.Unmarshal(v, &l); err != nil {
			return nil, err
		}
		out := make([]types.AttributeValue, len(l))
		for i, e := range l {
			av, err := fromAVJSON(e)
			if err != nil {
				return nil, err
			}
			out[i] = av
		}
		return &types.AttributeValueMemberL{Value: out}, nil
	case "M":
		item, err := unmarshalItem(v)
		if err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberM{Value: item}, nil
	case "BOOL":
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return nil, err
		}
		return &types.AttributeValueMemberBOOL{Value: b}, nil
	}
	return nil, fmt.Errorf("unsupported type %q", keys[0])
}

func unmarshalItem(data []byte) (map[string]types.AttributeValue, error) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	item := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		av, err := fromAVJSON(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		item[k] = av
	}
	return item, nil
}
