package main

// A hand-written protocol buffers codec for BenchmarkMessage (shared/bench/benchmark.proto):
// the standard library has no protobuf, and the baseline may use nothing else. It encodes the
// fields in field-number order, as SwiftProtobuf does, and skips unknown fields when decoding.

import (
	"encoding/binary"
	"errors"
	"math"
)

// BenchmarkMessage holds every field of bench.BenchmarkMessage. Presence is not tracked: the
// workload sets every field but field5, and the encoder writes every field but an empty field5.
type BenchmarkMessage struct {
	Field1, Field9, Field18, Field4, Field7, Field102, Field103, Field129 string

	Field80, Field81, Field59, Field12, Field17, Field13, Field14, Field30, Field24, Field78 bool

	Field2, Field3, Field280, Field6, Field16, Field130, Field104, Field100, Field101, Field29,
	Field60, Field271, Field272, Field150, Field23, Field25, Field67, Field68, Field128, Field131 int32

	Field22 int64
	Field5  []uint64
}

const workloadText = "许多往事在眼前一幕一幕，变的那麼模糊"

// workloadMessage is filled as BENCH.md says: strings, 100000, true, field5 empty.
func workloadMessage() *BenchmarkMessage {
	s, i := workloadText, int32(100000)
	return &BenchmarkMessage{
		Field1: s, Field9: s, Field18: s, Field4: s, Field7: s, Field102: s, Field103: s, Field129: s,
		Field80: true, Field81: true, Field59: true, Field12: true, Field17: true, Field13: true,
		Field14: true, Field30: true, Field24: true, Field78: true,
		Field2: i, Field3: i, Field280: i, Field6: i, Field16: i, Field130: i, Field104: i,
		Field100: i, Field101: i, Field29: i, Field60: i, Field271: i, Field272: i, Field150: i,
		Field23: i, Field25: i, Field67: i, Field68: i, Field128: i, Field131: 100000,
		Field22: 100000,
	}
}

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

func appendTag(b []byte, field int, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field)<<3|uint64(wire))
}

func appendString(b []byte, field int, s string) []byte {
	b = appendTag(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendInt32(b []byte, field int, v int32) []byte {
	b = appendTag(b, field, wireVarint)
	return binary.AppendUvarint(b, uint64(int64(v)))
}

func appendBool(b []byte, field int, v bool) []byte {
	b = appendTag(b, field, wireVarint)
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// Marshal appends the encoding of m to b.
func (m *BenchmarkMessage) Marshal(b []byte) []byte {
	b = appendString(b, 1, m.Field1)
	b = appendInt32(b, 2, m.Field2)
	b = appendInt32(b, 3, m.Field3)
	b = appendString(b, 4, m.Field4)
	for _, v := range m.Field5 {
		b = appendTag(b, 5, wireFixed64)
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = appendInt32(b, 6, m.Field6)
	b = appendString(b, 7, m.Field7)
	b = appendString(b, 9, m.Field9)
	b = appendBool(b, 12, m.Field12)
	b = appendBool(b, 13, m.Field13)
	b = appendBool(b, 14, m.Field14)
	b = appendInt32(b, 16, m.Field16)
	b = appendBool(b, 17, m.Field17)
	b = appendString(b, 18, m.Field18)
	b = appendTag(b, 22, wireVarint)
	b = binary.AppendUvarint(b, uint64(m.Field22))
	b = appendInt32(b, 23, m.Field23)
	b = appendBool(b, 24, m.Field24)
	b = appendInt32(b, 25, m.Field25)
	b = appendInt32(b, 29, m.Field29)
	b = appendBool(b, 30, m.Field30)
	b = appendBool(b, 59, m.Field59)
	b = appendInt32(b, 60, m.Field60)
	b = appendInt32(b, 67, m.Field67)
	b = appendInt32(b, 68, m.Field68)
	b = appendBool(b, 78, m.Field78)
	b = appendBool(b, 80, m.Field80)
	b = appendBool(b, 81, m.Field81)
	b = appendInt32(b, 100, m.Field100)
	b = appendInt32(b, 101, m.Field101)
	b = appendString(b, 102, m.Field102)
	b = appendString(b, 103, m.Field103)
	b = appendInt32(b, 104, m.Field104)
	b = appendInt32(b, 128, m.Field128)
	b = appendString(b, 129, m.Field129)
	b = appendInt32(b, 130, m.Field130)
	b = appendInt32(b, 131, m.Field131)
	b = appendInt32(b, 150, m.Field150)
	b = appendInt32(b, 271, m.Field271)
	b = appendInt32(b, 272, m.Field272)
	b = appendInt32(b, 280, m.Field280)
	return b
}

var errTruncated = errors.New("protobuf: truncated message")

// Unmarshal decodes data into m, overwriting the fields it carries.
func (m *BenchmarkMessage) Unmarshal(data []byte) error {
	for len(data) > 0 {
		key, n := binary.Uvarint(data)
		if n <= 0 {
			return errTruncated
		}
		data = data[n:]
		field, wire := int(key>>3), int(key&7)
		var varint uint64
		var bytes []byte
		switch wire {
		case wireVarint:
			varint, n = binary.Uvarint(data)
			if n <= 0 {
				return errTruncated
			}
			data = data[n:]
		case wireFixed64:
			if len(data) < 8 {
				return errTruncated
			}
			varint, data = binary.LittleEndian.Uint64(data), data[8:]
		case wireFixed32:
			if len(data) < 4 {
				return errTruncated
			}
			varint, data = uint64(binary.LittleEndian.Uint32(data)), data[4:]
		case wireBytes:
			length, n := binary.Uvarint(data)
			if n <= 0 || length > uint64(len(data)-n) || length > math.MaxInt32 {
				return errTruncated
			}
			bytes, data = data[n:n+int(length)], data[n+int(length):]
		default:
			return errors.New("protobuf: unsupported wire type")
		}
		if s := m.stringField(field); s != nil && wire == wireBytes {
			*s = string(bytes)
		} else if p := m.int32Field(field); p != nil && wire == wireVarint {
			*p = int32(varint)
		} else if p := m.boolField(field); p != nil && wire == wireVarint {
			*p = varint != 0
		} else if field == 22 && wire == wireVarint {
			m.Field22 = int64(varint)
		} else if field == 5 && wire == wireFixed64 {
			m.Field5 = append(m.Field5, varint)
		}
	}
	return nil
}

func (m *BenchmarkMessage) stringField(field int) *string {
	switch field {
	case 1:
		return &m.Field1
	case 4:
		return &m.Field4
	case 7:
		return &m.Field7
	case 9:
		return &m.Field9
	case 18:
		return &m.Field18
	case 102:
		return &m.Field102
	case 103:
		return &m.Field103
	case 129:
		return &m.Field129
	}
	return nil
}

func (m *BenchmarkMessage) boolField(field int) *bool {
	switch field {
	case 12:
		return &m.Field12
	case 13:
		return &m.Field13
	case 14:
		return &m.Field14
	case 17:
		return &m.Field17
	case 24:
		return &m.Field24
	case 30:
		return &m.Field30
	case 59:
		return &m.Field59
	case 78:
		return &m.Field78
	case 80:
		return &m.Field80
	case 81:
		return &m.Field81
	}
	return nil
}

func (m *BenchmarkMessage) int32Field(field int) *int32 {
	switch field {
	case 2:
		return &m.Field2
	case 3:
		return &m.Field3
	case 6:
		return &m.Field6
	case 16:
		return &m.Field16
	case 23:
		return &m.Field23
	case 25:
		return &m.Field25
	case 29:
		return &m.Field29
	case 60:
		return &m.Field60
	case 67:
		return &m.Field67
	case 68:
		return &m.Field68
	case 100:
		return &m.Field100
	case 101:
		return &m.Field101
	case 104:
		return &m.Field104
	case 128:
		return &m.Field128
	case 130:
		return &m.Field130
	case 131:
		return &m.Field131
	case 150:
		return &m.Field150
	case 271:
		return &m.Field271
	case 272:
		return &m.Field272
	case 280:
		return &m.Field280
	}
	return nil
}
