package catalog

import "fmt"

// The tags the catalog reads, matches or computes.
const (
	tagTransferSyntaxUID               = 0x00020010
	tagSpecificCharacterSet            = 0x00080005
	tagSOPClassUID                     = 0x00080016
	tagSOPInstanceUID                  = 0x00080018
	tagStudyDate                       = 0x00080020
	tagStudyTime                       = 0x00080030
	tagAccessionNumber                 = 0x00080050
	tagInstanceAvailability            = 0x00080056
	tagModality                        = 0x00080060
	tagModalitiesInStudy               = 0x00080061
	tagReferringPhysicianName          = 0x00080090
	tagTimezoneOffsetFromUTC           = 0x00080201
	tagStudyDescription                = 0x00081030
	tagSeriesDescription               = 0x0008103E
	tagRetrieveURL                     = 0x00081190
	tagPatientName                     = 0x00100010
	tagPatientID                       = 0x00100020
	tagPatientBirthDate                = 0x00100030
	tagPatientSex                      = 0x00100040
	tagStudyInstanceUID                = 0x0020000D
	tagSeriesInstanceUID               = 0x0020000E
	tagStudyID                         = 0x00200010
	tagSeriesNumber                    = 0x00200011
	tagInstanceNumber                  = 0x00200013
	tagNumberOfStudyRelatedSeries      = 0x00201206
	tagNumberOfStudyRelatedInstances   = 0x00201208
	tagNumberOfSeriesRelatedInstances  = 0x00201209
	tagNumberOfFrames                  = 0x00280008
	tagRows                            = 0x00280010
	tagColumns                         = 0x00280011
	tagBitsAllocated                   = 0x00280100
	tagPerformedProcedureStepStartDate = 0x00400244
	tagPerformedProcedureStepStartTime = 0x00400245
	tagRequestAttributesSequence       = 0x00400275
)

// tagKey is a tag as DICOM JSON names it: eight upper-case hex digits.
func tagKey(tag uint32) string { return fmt.Sprintf("%08X", tag) }

// The attributes a result shows by default, per level (PS3.18 Table
// 6.7.1-2, -2a, -2b), where the representative has them. The computed
// ones (ModalitiesInStudy, the counts, RetrieveURL) are render.go's.
var (
	studyDefaults = []uint32{
		tagSpecificCharacterSet, tagStudyDate, tagStudyTime, tagAccessionNumber, tagInstanceAvailability,
		tagReferringPhysicianName, tagTimezoneOffsetFromUTC, tagStudyDescription, tagPatientName, tagPatientID,
		tagPatientBirthDate, tagPatientSex, tagStudyInstanceUID, tagStudyID,
	}
	seriesDefaults = []uint32{
		tagSpecificCharacterSet, tagModality, tagTimezoneOffsetFromUTC, tagSeriesDescription, tagSeriesInstanceUID,
		tagSeriesNumber, tagPerformedProcedureStepStartDate, tagPerformedProcedureStepStartTime,
		tagRequestAttributesSequence,
	}
	instanceDefaults = []uint32{
		tagSpecificCharacterSet, tagSOPClassUID, tagSOPInstanceUID, tagInstanceAvailability, tagTimezoneOffsetFromUTC,
		tagInstanceNumber, tagRows, tagColumns, tagBitsAllocated, tagNumberOfFrames,
	}
)
